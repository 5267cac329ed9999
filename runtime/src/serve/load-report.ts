/**
 * serve-bench's results: the JSON document and its markdown table, with `bench` at the same batch
 * sizes beside the server's concurrency levels when a bench.json is given. Two bench figures, since
 * they measure different things: decode tokens/s (bench's own figure: decode steps only) and
 * end-to-end tokens/s (batch x new tokens over prefill + decode), which is what a server's output
 * tokens/s also includes (its prefills run inside the measured window).
 */
import type { LevelResult } from './load-client.js';

export interface BenchPointLike {
  batch: number;
  prompt: number;
  newTokens: number;
  cache?: number;
  policy?: string;
  msPerToken: { mean: number; p50: number; p99: number };
  prefillMs: { mean: number };
  decodeTokensPerSecond: number;
}

export interface BenchSide {
  batch: number;
  cache: number | null;
  policy: string | null;
  newTokens: number;
  decodeTokensPerSecond: number;
  endToEndTokensPerSecond: number;
  msPerTokenP50: number;
  msPerTokenP99: number;
}

export interface ServeBenchDocument {
  format: 'moe-offload-serve-bench-v1';
  date: string;
  url: string;
  model: string;
  method: string;
  levels: (LevelResult & { bench: BenchSide | null })[];
  benchFile: string | null;
}

/** bench's point at this batch and prompt length (the first cache/policy found), as a BenchSide. */
export function benchSide(points: readonly BenchPointLike[], batch: number, prompt: number): BenchSide | null {
  const p = points.find((q) => q.batch === batch && q.prompt === prompt);
  if (!p) return null;
  const e2eMs = p.prefillMs.mean + (p.newTokens - 1) * p.msPerToken.mean;
  return {
    batch,
    cache: p.cache ?? null,
    policy: p.policy ?? null,
    newTokens: p.newTokens,
    decodeTokensPerSecond: p.decodeTokensPerSecond,
    endToEndTokensPerSecond: (batch * p.newTokens * 1000) / e2eMs,
    msPerTokenP50: p.msPerToken.p50,
    msPerTokenP99: p.msPerToken.p99,
  };
}

const f = (v: number | undefined | null, d = 1) => (v === undefined || v === null || !Number.isFinite(v) ? '-' : v.toFixed(d));

export function serveBenchMarkdown(doc: ServeBenchDocument): string {
  const lines = [
    `# serve-bench: ${doc.model} at ${doc.url}`,
    '',
    doc.method,
    '',
    '| concurrency | requests | prompt | max tokens | output tok/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | bench batch | bench decode tok/s | bench end-to-end tok/s | bench ms/token p50 / p99 | serve / bench end-to-end | serve / bench decode |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const l of doc.levels) {
    const b = l.bench;
    lines.push(
      `| ${l.concurrency} | ${l.requests} | ${l.promptTokens} | ${l.maxTokens} | ${f(l.outputTokensPerSecond)} | ${f(l.ttftMs.p50)} | ${f(l.ttftMs.p99)} | ${f(l.tpotMs.p50, 2)} | ${f(l.tpotMs.p99, 2)} | ` +
        `${b ? b.batch : '-'} | ${f(b?.decodeTokensPerSecond)} | ${f(b?.endToEndTokensPerSecond)} | ${b ? `${f(b.msPerTokenP50, 2)} / ${f(b.msPerTokenP99, 2)}` : '-'} | ` +
        `${b ? `${f((100 * l.outputTokensPerSecond) / b.endToEndTokensPerSecond)}%` : '-'} | ${b ? `${f((100 * l.outputTokensPerSecond) / b.decodeTokensPerSecond)}%` : '-'} |`,
    );
  }
  return lines.join('\n') + '\n';
}
