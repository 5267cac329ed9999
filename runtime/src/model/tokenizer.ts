import { existsSync, readFileSync } from 'node:fs';
import { requireRegularFile } from './regular-file.js';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { BadInputError, UserError } from '../../../core/src/errors.js';
import { isKnownChatTemplate, renderChat, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';

/**
 * The checkpoint's tokenizer (tokenizer.json + tokenizer_config.json, read with @huggingface/tokenizers)
 * and its chat template. encode() never adds special tokens by itself: the chat template writes <bos>
 * as text and the special-token string is recognised as its id, so nothing is added twice.
 */
export interface ModelTokenizer {
  bosTokenId: number;
  eosTokenId: number;
  bosToken: string;
  eosToken: string;
  encode(text: string, opts?: { addBos?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** the chat text (DeepSeek-V2-Chat template) */
  renderChat(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string;
  /** renderChat then encode */
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): number[];
}

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

export function loadTokenizer(dir: string): ModelTokenizer {
  const missing = TOKENIZER_FILES.filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) {
    throw new BadInputError(join(dir, missing[0]), `missing tokenizer file${missing.length > 1 ? 's' : ''}: ${missing.join(' and ')} (both are needed to encode and decode text)`);
  }
  const tokenizerPath = join(dir, 'tokenizer.json');
  const configPath = join(dir, 'tokenizer_config.json');
  const tokenizerJson = readJsonObject(tokenizerPath);
  const tokenizerConfig = readJsonObject(configPath);
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(tokenizerJson, tokenizerConfig);
  } catch (err) {
    throw new BadInputError(tokenizerPath, `cannot build the tokenizer (${(err as Error).message})`);
  }

  const bosToken = specialTokenText(tokenizerConfig.bos_token, configPath, 'bos_token');
  const eosToken = specialTokenText(tokenizerConfig.eos_token, configPath, 'eos_token');
  const bosTokenId = idOf(tok, bosToken, tokenizerPath, 'bos_token');
  const eosTokenId = idOf(tok, eosToken, tokenizerPath, 'eos_token');
  checkAgainstModelConfig(dir, bosTokenId, eosTokenId);

  const template = tokenizerConfig.chat_template;
  // Absent: DeepSeek's template is the only one implemented, so it is the one used. Present: it must be it.
  const templateProblem =
    template === undefined || template === null
      ? null
      : typeof template === 'string' && isKnownChatTemplate(template)
        ? null
        : `${configPath}: chat_template is not the DeepSeek-V2-Chat template, the only one implemented (the template is implemented in code, not interpreted)`;

  const encode = (text: string, opts: { addBos?: boolean } = {}) => {
    const ids = tok.encode(text, { add_special_tokens: false }).ids;
    return opts.addBos ? [bosTokenId, ...ids] : ids;
  };
  const render = (messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}) => {
    if (templateProblem) throw new UserError(templateProblem);
    return renderChat(messages, bosToken, eosToken, opts);
  };
  return {
    bosTokenId,
    eosTokenId,
    bosToken,
    eosToken,
    encode,
    decode: (ids, opts = {}) => {
      // The library drops ids it does not know without a word; an unknown id here is a caller's bug.
      for (const id of ids) {
        if (!Number.isInteger(id) || tok.id_to_token(id) === undefined) throw new UserError(`token id ${id} is not in the vocabulary of ${tokenizerPath}`);
      }
      if (ids.length === 0) return '';
      return tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
    },
    renderChat: render,
    applyChatTemplate: (messages, opts) => encode(render(messages, opts)),
  };
}

function readJsonObject(path: string): Record<string, unknown> {
  requireRegularFile(path, 'a tokenizer or model config file');
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new BadInputError(path, `not valid JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadInputError(path, 'expected a JSON object');
  return v as Record<string, unknown>;
}

/** tokenizer_config.json writes special tokens as a string or as {"__type": "AddedToken", "content": ...}. */
function specialTokenText(v: unknown, file: string, key: string): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  throw new BadInputError(file, `${key} is missing or malformed (expected a string or an object with content)`);
}

function idOf(tok: HfTokenizer, token: string, file: string, key: string): number {
  const id = tok.token_to_id(token);
  if (id === undefined) throw new BadInputError(file, `${key} ${JSON.stringify(token)} is not in the vocabulary`);
  return id;
}

/** The tokenizer and config.json must agree on bos/eos, or generation would stop on the wrong token. */
function checkAgainstModelConfig(dir: string, bos: number, eos: number): void {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return;
  const cfg = readJsonObject(path);
  if (typeof cfg.bos_token_id === 'number' && cfg.bos_token_id !== bos) {
    throw new BadInputError(path, `bos_token_id = ${cfg.bos_token_id} but the tokenizer's bos_token has id ${bos}`);
  }
  const eosIds = Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id : [cfg.eos_token_id];
  if (typeof eosIds[0] === 'number' && !eosIds.includes(eos)) {
    throw new BadInputError(path, `eos_token_id = ${JSON.stringify(cfg.eos_token_id)} but the tokenizer's eos_token has id ${eos}`);
  }
}
