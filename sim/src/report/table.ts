/** The simulate command's text output: a header naming trace, routing and calibration, then one row per configuration. */
import type { SimResult } from '../simulation.js';
import { routingDescription } from './rows.js';

export function formatHeader(tracePath: string, results: SimResult[]): string {
  const r = results[0];
  const lines = [
    `trace        ${tracePath} (${r.trace.sequences} sequences, ${r.trace.tokens} tokens)`,
    `routing      ${routingDescription(r)}`,
    `calibration  ${r.calibrationLabel}`,
  ];
  const warm = results.find((x) => x.warmupLabel);
  if (warm) lines.push(`static       pinned from ${warm.warmupLabel}`);
  return lines.join('\n');
}

const COLS: Array<[string, number, (r: SimResult) => string]> = [
  ['policy', 7, (r) => r.config.policy],
  ['cache', 5, (r) => String(r.config.cacheSize)],
  ['batch', 5, (r) => String(r.config.batch)],
  ['prefetch', 9, (r) => r.config.prefetch],
  ['miss', 6, (r) => r.config.miss],
  ['hit rate', 8, (r) => pct(r.hitRate)],
  ['ready', 6, (r) => pct(r.requests > 0 ? r.readyHits / r.requests : 0)],
  ['GB moved', 9, (r) => (r.bytesMoved / 1e9).toFixed(1)],
  ['ms/token', 8, (r) => r.timePerTokenMs.mean.toFixed(2)],
  ['p50', 7, (r) => r.timePerTokenMs.p50.toFixed(2)],
  ['p99', 7, (r) => r.timePerTokenMs.p99.toFixed(2)],
  ['tok/s', 7, (r) => r.throughputTokensPerS.toFixed(1)],
  ['pf prec', 7, (r) => (r.config.prefetch === 'none' || r.prefetch.precision === null ? '-' : pct(r.prefetch.precision))],
  ['pf rec', 7, (r) => (r.config.prefetch === 'none' || r.prefetch.recall === null ? '-' : pct(r.prefetch.recall))],
  ['gpu/idle ms', 11, (r) => `${(r.breakdown.gpuNonExpertMs + r.breakdown.gpuExpertMs).toFixed(2)}/${r.breakdown.gpuIdleMs.toFixed(2)}`],
];

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

export function formatTable(results: SimResult[]): string {
  const head = COLS.map(([name, w], i) => (i < 5 ? name.padEnd(w) : name.padStart(w))).join('  ');
  const rows = results.map((r) => COLS.map(([, w, f], i) => (i < 5 ? f(r).padEnd(w) : f(r).padStart(w))).join('  '));
  return [head, ...rows].join('\n');
}

export const TABLE_NOTES = [
  'hit rate: requests whose expert held a cache slot (canonical replay); ready: of those, copy already finished.',
  'ms/token: predicted latency of an output token (its step), mean/p50/p99; gpu/idle: GPU busy and GPU waiting, ms per step.',
].join('\n');
