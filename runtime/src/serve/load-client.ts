/**
 * The load generator of `serve-bench`: `concurrency` clients, each streaming /v1/completions requests
 * back to back (token-id prompts, greedy, include_usage) until `requests` have been sent at that level.
 * Every chunk is timed on arrival (the server sends one per generated token), so per request:
 *   TTFT = first token chunk - request sent;  TPOT = (last token chunk - first) / (tokens - 1);
 * and per level: output tokens/s = all completion tokens / (last response end - first request sent).
 * Requests are numbered in the order they are sent; the server replays routing lanes in its own
 * admission order (serve --routing), which equals that order for a FIFO queue.
 */
import { summarize, type Summary } from '../bench/stats.js';

export interface LoadOptions {
  url: string;
  apiKey?: string;
  model: string;
  concurrency: number;
  requests: number;
  /** prompt of request g (token ids) */
  prompt(g: number): number[];
  maxTokens: number;
}

export interface RequestTiming {
  ttftMs: number;
  tpotMs: number | null;
  tokens: number;
  /** gaps between consecutive token chunks */
  itlMs: number[];
}

export interface LevelResult {
  concurrency: number;
  requests: number;
  promptTokens: number;
  maxTokens: number;
  wallSeconds: number;
  completionTokens: number;
  outputTokensPerSecond: number;
  ttftMs: Summary;
  tpotMs: Summary;
  itlMs: Summary;
}

async function streamOne(o: LoadOptions, prompt: number[]): Promise<RequestTiming> {
  const t0 = performance.now();
  const res = await fetch(`${o.url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(o.apiKey ? { Authorization: `Bearer ${o.apiKey}` } : {}) },
    body: JSON.stringify({ model: o.model, prompt, max_tokens: o.maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`serve-bench: HTTP ${res.status}: ${await res.text()}`);
  const times: number[] = [];
  let usage: number | null = null;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    const now = performance.now();
    buffer += decoder.decode(part, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith('data: ')) continue;
      const data = event.slice('data: '.length);
      if (data === '[DONE]') continue;
      const chunk = JSON.parse(data) as { error?: { message: string }; choices: { finish_reason: string | null }[]; usage?: { completion_tokens: number } | null };
      if (chunk.error) throw new Error(`serve-bench: the server ended a stream: ${chunk.error.message}`);
      if (chunk.usage) usage = chunk.usage.completion_tokens;
      if (chunk.choices.length > 0 && chunk.choices[0].finish_reason === null) times.push(now);
    }
  }
  if (times.length === 0) throw new Error('serve-bench: a stream ended without tokens');
  const tokens = usage ?? times.length;
  const itlMs = times.slice(1).map((t, i) => t - times[i]);
  return { ttftMs: times[0] - t0, tpotMs: tokens > 1 ? (times[times.length - 1] - times[0]) / (tokens - 1) : null, tokens, itlMs };
}

/** Runs one concurrency level; `first` numbers its requests (prompts and, server-side, routing lanes continue across levels). */
export async function runLevel(o: LoadOptions, first = 0): Promise<LevelResult> {
  let next = 0;
  const timings: RequestTiming[] = [];
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < o.requests) {
      const g = first + next++;
      timings.push(await streamOne(o, o.prompt(g)));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  const wallSeconds = (performance.now() - t0) / 1000;
  const completionTokens = timings.reduce((a, t) => a + t.tokens, 0);
  return {
    concurrency: o.concurrency,
    requests: o.requests,
    promptTokens: o.prompt(first).length,
    maxTokens: o.maxTokens,
    wallSeconds,
    completionTokens,
    outputTokensPerSecond: completionTokens / wallSeconds,
    ttftMs: summarize(timings.map((t) => t.ttftMs)),
    tpotMs: summarize(timings.flatMap((t) => (t.tpotMs === null ? [] : [t.tpotMs]))),
    itlMs: summarize(timings.flatMap((t) => t.itlMs)),
  };
}
