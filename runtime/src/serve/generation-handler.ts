/**
 * POST /v1/completions and /v1/chat/completions: a validated request becomes a scheduler job whose
 * tokens are decoded to text (stop strings applied) and answered as one JSON object or as OpenAI's
 * stream of chunks. A client that goes away cancels its job (its slot is freed at the next step).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './api-error.js';
import { readJsonBody, sendError, sendJson } from './http.js';
import { parseGenerationRequest, type GenerationSpec, type ModelContext, type RequestKind } from './openai-request.js';
import type { Job, JobEnd, Scheduler } from './scheduler.js';
import { SseStream } from './sse.js';
import { Detokenizer } from './detokenizer.js';
import { StopText } from './stop-text.js';

export interface GenerationDeps {
  scheduler: Scheduler;
  model: ModelContext;
  decode(ids: number[]): string;
  maxBodyBytes: number;
}

type Finish = 'stop' | 'length';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Builds OpenAI's response objects for one request. */
class Shapes {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  constructor(
    readonly kind: RequestKind,
    readonly model: string,
  ) {
    this.id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
  }

  private head(object: string) {
    return { id: this.id, object, created: this.created, model: this.model };
  }

  chunk(text: string | null, finish: Finish | null, usage: boolean, first = false) {
    const tail = usage ? { usage: null } : {};
    if (this.kind === 'chat') {
      const delta = first ? { role: 'assistant', content: '' } : text === null ? {} : { content: text };
      return { ...this.head('chat.completion.chunk'), choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...tail };
    }
    return { ...this.head('text_completion'), choices: [{ index: 0, text: text ?? '', logprobs: null, finish_reason: finish }], ...tail };
  }

  usageChunk(usage: Usage) {
    return { ...this.head(this.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'), choices: [], usage };
  }

  whole(text: string, finish: Finish, usage: Usage) {
    if (this.kind === 'chat') {
      return { ...this.head('chat.completion'), choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }], usage };
    }
    return { ...this.head('text_completion'), choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], usage };
  }
}

function endError(end: JobEnd): ApiError {
  if (end.kind === 'shutdown') return new ApiError(503, 'the server shut down before the completion finished', 'server_error', null, 'shutting_down');
  if (end.kind === 'error') return new ApiError(500, `the engine failed: ${end.error.message}`, 'server_error');
  return new ApiError(500, 'the completion was cancelled', 'server_error');
}

export async function handleGeneration(kind: RequestKind, req: IncomingMessage, res: ServerResponse, deps: GenerationDeps): Promise<void> {
  const body = await readJsonBody(req, deps.maxBodyBytes);
  const spec: GenerationSpec = parseGenerationRequest(kind, body, deps.model);
  const shapes = new Shapes(kind, deps.model.modelId);
  const sse = spec.stream ? new SseStream(res) : null;
  const text = new Detokenizer(deps.decode);
  const stop = new StopText(spec.stop);
  let generated = 0;
  let answered = false;

  const usage = (): Usage => ({ prompt_tokens: spec.promptIds.length, completion_tokens: generated, total_tokens: spec.promptIds.length + generated });
  // One chunk per generated token, even when its text is held back (an incomplete character, a
  // possible stop string): clients can time every token, as with OpenAI's own streams.
  const emit = (piece: string): void => {
    if (sse) sse.send(shapes.chunk(piece, null, spec.includeUsage));
  };
  const complete = (finish: Finish): void => {
    if (answered) return;
    answered = true;
    if (!sse) {
      sendJson(res, 200, shapes.whole(stop.all, finish, usage()));
      return;
    }
    sse.send(shapes.chunk(null, finish, spec.includeUsage));
    if (spec.includeUsage) sse.send(shapes.usageChunk(usage()));
    sse.done();
  };
  const fail = (err: ApiError): void => {
    if (answered) return;
    answered = true;
    if (sse) sse.fail(err.body());
    else sendError(res, err);
  };

  const job: Job = {
    prompt: spec.promptIds,
    maxTokens: spec.maxTokens,
    sampling: spec.sampling,
    onToken(token) {
      generated++;
      const r = stop.push(text.push(token));
      emit(r.text);
      if (r.stopped) {
        complete('stop');
        deps.scheduler.cancel(job);
      }
    },
    onEnd(end) {
      if (end.kind === 'finished') {
        const r = stop.push(text.flush());
        const rest = r.stopped ? r.text : r.text + stop.flush();
        if (rest !== '') emit(rest);
        complete(r.stopped || end.reason === 'eos' ? 'stop' : 'length');
      } else if (end.kind !== 'cancelled') fail(endError(end));
      else if (!answered && !res.destroyed) fail(endError(end));
    },
  };
  // 'close' also fires after a normal end; then the job is over and cancel() does nothing.
  res.on('close', () => deps.scheduler.cancel(job));
  deps.scheduler.submit(job);
  if (sse && kind === 'chat') sse.send(shapes.chunk(null, null, spec.includeUsage, true));
  else sse?.open();
}
