/**
 * The prefetch options (issue 12) that generate and chat share (bench takes --prefetch as a list: bench.ts),
 * and the summary line they print on stderr after a run, beside the cache's hits and the miss summary.
 */
import type { Command } from 'commander';
import { prefetchPrecisionRecall } from '../sim/src/prefetch/precision-recall.js';
import type { NativeCacheStats } from '../runtime/src/engine/native-binding.js';
import type { OffloadStats } from '../runtime/src/engine/index.js';

export function addPrefetchFlags(cmd: Command, opts: { routing: boolean }): Command {
  const needs = opts.routing ? 'oracle and predicted need --routing, next-gate is refused with it' : 'chat has no --routing, so only next-gate (oracle and predicted need a replayed routing)';
  return cmd
    .option('--prefetch <name>', `device cuda, offloaded: copy experts into the cache ahead of need: none, next-gate (the next layer's router on this layer's input), oracle (the replayed routing ahead), predicted (--predictor's experts); ${needs}`, 'none')
    .option('--predictor <dir>', '--prefetch predicted: the exported predictor (train-predictor --out DIR), run inside the runtime at each MoE layer')
    .option('--predictor-budget <n>', '--prefetch predicted: experts the predictor names per token and layer (default 6)')
    .option('--predictor-min-prob <p>', '--prefetch predicted: leave out predicted experts below this probability (default 0: keep all)')
    .option('--prefetch-lookahead <k>', '--prefetch oracle: layers ahead (default 1)')
    .option('--prefetch-in-flight <n>', 'with a prefetcher: prefetch pieces on the copy stream at once (default 1)');
}

/** The run's prefetch figures: the controller's decisions (cumulative since load) and, on the GPU, the wasted bytes. */
export function prefetchFigures(stats: NativeCacheStats | null, moved: OffloadStats | null) {
  const d = stats?.prefetch;
  if (!d) return null;
  const dev = (moved as unknown as { prefetch?: { wastedBytes?: number; lateHits?: number } } | null)?.prefetch;
  return {
    issued: d.issued,
    useful: d.useful,
    dropped: d.dropped,
    needed: d.needed,
    ...prefetchPrecisionRecall(d),
    wastedBytes: dev?.wastedBytes === undefined ? null : Number(dev.wastedBytes),
    lateHits: dev?.lateHits === undefined ? null : Number(dev.lateHits),
  };
}

const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);

/** `prefetch (--prefetch oracle): 120 issued, 90 useful, precision 75.0%, recall 40.0%, 0.31 GB wasted`, or null without prefetch. */
export function prefetchSummaryLine(name: string, f: ReturnType<typeof prefetchFigures>): string | null {
  if (!f) return null;
  return (
    `prefetch (--prefetch ${name}): ${f.issued} issued, ${f.useful} useful, ${f.dropped} dropped, precision ${pct(f.precision)} (useful / issued), recall ${pct(f.recall)} (useful / needed)` +
    (f.wastedBytes === null ? '' : `, ${(f.wastedBytes / 1e9).toFixed(2)} GB wasted`) +
    (f.lateHits === null ? '' : `, ${f.lateHits} late hits`)
  );
}
