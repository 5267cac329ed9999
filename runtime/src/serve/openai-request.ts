/**
 * Validation of OpenAI completion and chat-completion requests into what the scheduler runs. Fields
 * are checked by type and range; fields the server cannot honour are accepted only at their neutral
 * value (e.g. presence_penalty 0), so a client is never silently given something other than it asked
 * for; any other field is refused by name, as OpenAI does.
 */
import { randomInt } from 'node:crypto';
import type { Sampling } from '../engine/options.js';
import type { ChatMessage } from '../model/chat-template.js';
import { ApiError, badField } from './api-error.js';

export type RequestKind = 'completion' | 'chat';

/** A validated request. */
export interface GenerationSpec {
  kind: RequestKind;
  promptIds: number[];
  maxTokens: number;
  sampling: Sampling;
  /** stop strings: the text ends before the first of them */
  stop: string[];
  stream: boolean;
  /** stream_options.include_usage: a last chunk with usage and no choices */
  includeUsage: boolean;
}

/** What validation needs to know about the loaded model. */
export interface ModelContext {
  modelId: string;
  /** tokens one sequence may hold: prompt + max_tokens - 1 */
  contextTokens: number;
  vocabSize: number;
  encode(text: string): number[];
  applyChatTemplate(messages: ChatMessage[]): number[];
}

const COMMON = ['model', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'n', 'stream', 'stream_options', 'user'];
/** Accepted only at the value that changes nothing. */
const NEUTRAL: Record<string, (v: unknown) => boolean> = {
  presence_penalty: (v) => v === null || v === 0,
  frequency_penalty: (v) => v === null || v === 0,
  logit_bias: (v) => v === null || (isObject(v) && Object.keys(v).length === 0),
  logprobs: (v) => v === null || v === false,
  top_logprobs: (v) => v === null || v === 0,
  echo: (v) => v === null || v === false,
  best_of: (v) => v === null || v === 1,
  suffix: (v) => v === null,
  response_format: (v) => v === null || (isObject(v) && (v as { type?: unknown }).type === 'text' && Object.keys(v).length === 1),
};
const KNOWN: Record<RequestKind, string[]> = {
  completion: [...COMMON, 'prompt', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'logprobs', 'echo', 'best_of', 'suffix'],
  chat: [...COMMON, 'messages', 'max_completion_tokens', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'logprobs', 'top_logprobs', 'response_format'],
};
/** OpenAI's legacy default for /v1/completions; chat defaults to the rest of the context. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}` : `${typeof v} ${JSON.stringify(v)}`;
}

function optionalInt(body: Record<string, unknown>, key: string, lo: number, hi: number): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw badField(key, `must be an integer in [${lo}, ${hi}], got ${describe(v)}`);
  return v;
}

function optionalNumber(body: Record<string, unknown>, key: string, lo: number, hi: number, loOpen = false): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (loOpen ? v <= lo : v < lo) || v > hi) {
    throw badField(key, `must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${describe(v)}`);
  }
  return v;
}

function tokenIds(v: unknown, param: string, vocab: number): number[] | undefined {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number')) return undefined;
  v.forEach((id: number, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw badField(`${param}[${i}]`, `token id ${id} is outside the vocabulary [0, ${vocab})`);
  });
  return v as number[];
}

function completionPrompt(v: unknown, ctx: ModelContext): number[] {
  if (v === undefined || v === null) throw badField('prompt', 'is required');
  if (typeof v === 'string') return ctx.encode(v);
  const ids = tokenIds(v, 'prompt', ctx.vocabSize);
  if (ids) return ids;
  if (Array.isArray(v) && v.length === 1) {
    if (typeof v[0] === 'string') return ctx.encode(v[0]);
    const inner = tokenIds(v[0], 'prompt[0]', ctx.vocabSize);
    if (inner) return inner;
  }
  if (Array.isArray(v) && v.length > 1 && v.every((x) => typeof x === 'string' || Array.isArray(x))) {
    throw badField('prompt', `${v.length} prompts in one request are not supported (send one prompt per request)`);
  }
  throw badField('prompt', `must be a string, an array of token ids, or a one-element array of either, got ${describe(v)}`);
}

function chatMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw badField('messages', `must be a non-empty array of {role, content}, got ${describe(v)}`);
  return v.map((m, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw badField(at, `must be an object {role, content}, got ${describe(m)}`);
    for (const k of Object.keys(m)) {
      if (k !== 'role' && k !== 'content' && k !== 'name') throw badField(`${at}.${k}`, 'is not supported (known: role, content, name)');
    }
    // OpenAI's newer 'developer' role is the system message of older models.
    const role = m.role === 'developer' ? 'system' : m.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant') throw badField(`${at}.role`, `must be system, user or assistant, got ${describe(m.role)}`);
    if (m.name !== undefined && typeof m.name !== 'string') throw badField(`${at}.name`, `must be a string, got ${describe(m.name)}`);
    let content: string;
    if (typeof m.content === 'string') content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((part: unknown, j: number) => {
          if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
            throw badField(`${at}.content[${j}]`, `only text parts {type: "text", text} are supported, got ${describe(part)}`);
          }
          return part.text;
        })
        .join('');
    } else throw badField(`${at}.content`, `must be a string or an array of text parts, got ${describe(m.content)}`);
    return { role, content };
  });
}

function stopStrings(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw badField('stop', `must be a non-empty string or an array of at most 4 non-empty strings, got ${describe(v)}`);
  }
  return list as string[];
}

/** Validates a parsed JSON body; throws ApiError (4xx) naming the field. */
export function parseGenerationRequest(kind: RequestKind, body: unknown, ctx: ModelContext): GenerationSpec {
  if (!isObject(body)) throw new ApiError(400, `the request body must be a JSON object, got ${describe(body)}`);
  for (const [k, v] of Object.entries(body)) {
    if (!KNOWN[kind].includes(k)) throw new ApiError(400, `Unrecognized request argument supplied: ${k}`, 'invalid_request_error', k);
    if (NEUTRAL[k] && !NEUTRAL[k](v)) throw badField(k, `${describe(v)} is not supported by this server (only its neutral value is accepted)`);
  }
  if (typeof body.model !== 'string') throw badField('model', `is required and must be a string, got ${describe(body.model)}`);
  if (body.model !== ctx.modelId) {
    throw new ApiError(404, `The model '${body.model}' does not exist (this server serves '${ctx.modelId}')`, 'invalid_request_error', 'model', 'model_not_found');
  }
  if (body.user !== undefined && body.user !== null && typeof body.user !== 'string') throw badField('user', `must be a string, got ${describe(body.user)}`);
  const n = optionalInt(body, 'n', 1, 128);
  if (n !== undefined && n !== 1) throw badField('n', `only n: 1 is supported, got ${n}`);
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw badField('stream', `must be a boolean, got ${describe(body.stream)}`);
  const stream = body.stream === true;
  let includeUsage = false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream) throw badField('stream_options', 'is only allowed with stream: true');
    if (!isObject(so) || Object.keys(so).some((k) => k !== 'include_usage') || (so.include_usage !== undefined && typeof so.include_usage !== 'boolean')) {
      throw badField('stream_options', `must be {include_usage: boolean}, got ${describe(so)}`);
    }
    includeUsage = so.include_usage === true;
  }
  const temperature = optionalNumber(body, 'temperature', 0, 2) ?? 1;
  const topP = optionalNumber(body, 'top_p', 0, 1, true) ?? 1;
  const seed = optionalInt(body, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const stop = stopStrings(body.stop);

  const promptIds = kind === 'completion' ? completionPrompt(body.prompt, ctx) : ctx.applyChatTemplate(chatMessages(body.messages));
  if (promptIds.length === 0) throw badField(kind === 'completion' ? 'prompt' : 'messages', 'encodes to no tokens');
  const room = ctx.contextTokens - promptIds.length + 1;
  if (room < 1) {
    throw new ApiError(400, `This model's maximum context length is ${ctx.contextTokens} tokens, but the prompt has ${promptIds.length} tokens`, 'invalid_request_error', kind === 'completion' ? 'prompt' : 'messages', 'context_length_exceeded');
  }
  const maxKey = kind === 'chat' && body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  if (kind === 'chat' && body.max_tokens != null && body.max_completion_tokens != null) throw badField('max_tokens', 'give max_tokens or max_completion_tokens, not both');
  const asked = optionalInt(body, maxKey, 1, Number.MAX_SAFE_INTEGER);
  if (asked !== undefined && asked > room) {
    throw new ApiError(400, `${maxKey}: ${asked} is too large: this model's maximum context length is ${ctx.contextTokens} tokens and the prompt has ${promptIds.length}, so at most ${room} new tokens fit`, 'invalid_request_error', maxKey, 'context_length_exceeded');
  }
  const maxTokens = asked ?? (kind === 'completion' ? Math.min(COMPLETION_DEFAULT_MAX_TOKENS, room) : room);
  // temperature 0 is greedy; without a seed, a sampled request draws one (OpenAI's requests without a seed are not reproducible either).
  const sampling: Sampling = temperature === 0 ? 'greedy' : { temperature, topP, seed: seed ?? randomInt(0, 2 ** 47) };
  return { kind, promptIds, maxTokens, sampling, stop, stream, includeUsage };
}
