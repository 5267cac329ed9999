/**
 * bench in offload mode (issue 6): routed experts offloaded on device 'cuda', a grid of (cache size,
 * policy, batch, prompt, new tokens). Per point the engine's offloading session is replaced
 * (Engine.resetOffload): the cache and the GPU slots start cold and the routing replay starts again at
 * its first lane, so the runtime's hits over the point's generations (warm-up included) are compared
 * with the simulator's replay (sim/src/replay/replay-corpus.ts) of exactly the lanes the point used, in
 * the same batches: equal-length prompts, no eos stop, batches one after another, which is the
 * alignment runtime/test/offload/runtime-vs-sim.test.ts checks on the CPU engine.
 * One engine per cache size (the pool holds exactly C slots, so its memory figures are C's); cache
 * sizes run in ascending order because the engine's allocation peak is a process-wide maximum.
 */
import { performance } from 'node:perf_hooks';
import { replayCorpus } from '../../../sim/src/replay/replay-corpus.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { RoutingCorpus } from '../../../traces/src/sequences.js';
import { Engine, type OffloadStats } from '../engine/index.js';
import type { ModelConfig } from '../model/config.js';
import { gpuMemoryFor, type GpuMemoryPlan, type RunShape } from '../offload/gpu-budget.js';
import { fillLanes } from '../offload/replay-lanes.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { UserError } from '../../../core/src/errors.js';
import { benchPoint, type PointResult } from './engine-bench.js';
import type { GridPoint } from './grid.js';
import type { TargetResult } from './targets.js';

export interface OffloadBenchOptions {
  caches: number[];
  policies: PolicyName[];
  /** bytes; the engine's budget check and the plan (null: none) */
  gpuMemory: number | null;
  /** traces to replay (lanes filled per point, see replay-lanes.ts); empty: the router decides */
  routing: RoutingReplay[];
}

export interface OffloadPointResult extends PointResult {
  cache: number;
  policy: PolicyName;
  routing: string;
  /** runtime counters over the point's generations (warm-up included; cold start) */
  hits: number;
  requests: number;
  hitRate: number;
  /** the simulator on the same lanes and batches; null without a routing replay */
  simHits: number | null;
  simRequests: number | null;
  simHitRate: number | null;
  /** per-layer hits equal the simulator's */
  hitsMatchSim: boolean | null;
  /** data moved, over the point's generations */
  slotCopies: number;
  stagedCopies: number;
  bytesH2D: number;
  copyWaitMs: number;
  /** averages over the point's forwards (prefill and decode steps of every generation) */
  bytesPerForward: number;
  copyWaitMsPerForward: number;
  enginePeakBytes: number;
  deviceUsedPeakBytes: number;
  plan: GpuMemoryPlan;
}

function diff(a: OffloadStats | null, b: OffloadStats | null, key: keyof OffloadStats): number {
  return (b?.[key] ?? 0) - (a?.[key] ?? 0);
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** The largest run of the grid: what the budget and the KV cache must hold. */
export function gridShape(grid: GridPoint[]): RunShape {
  const batch = Math.max(...grid.map((p) => p.batch));
  const contextTokens = Math.max(...grid.map((p) => p.prompt + p.newTokens));
  const prefillRows = Math.max(...grid.map((p) => p.batch * p.prompt));
  return { batch, contextTokens, prefillRows };
}

export async function runOffloadGrid(
  model: string,
  config: ModelConfig,
  grid: GridPoint[],
  promptsOf: (p: GridPoint) => number[][],
  repeats: number,
  warmup: number,
  o: OffloadBenchOptions,
  log: (line: string) => void,
): Promise<OffloadPointResult[]> {
  const shape = gridShape(grid);
  const out: OffloadPointResult[] = [];
  for (const C of [...o.caches].sort((a, b) => a - b)) {
    log(`bench: loading the engine with routed experts offloaded, ${C} GPU slots per MoE layer`);
    const t0 = performance.now();
    const engine = await Engine.load(model, {
      device: 'cuda',
      cache: { slotsPerLayer: C, policy: o.policies[0] },
      poolSlots: C,
      runShape: shape,
      ...(o.gpuMemory !== null ? { gpuMemory: o.gpuMemory } : {}),
    });
    log(`bench: loaded in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
    try {
      for (const policy of o.policies) {
        for (const p of grid) {
          const gens = warmup + repeats;
          const lanes = o.routing.length ? fillLanes(o.routing, gens * p.batch, p.prompt + p.newTokens - 1) : null;
          engine.resetOffload({ cache: { slotsPerLayer: C, policy }, ...(lanes ? { routing: lanes.replay } : {}) });
          const before = engine.offloadStats();
          const r = await benchPoint(engine, p, promptsOf(p), repeats, warmup, log);
          const after = engine.offloadStats();
          const stats = engine.cacheStats();
          if (!stats) throw new UserError('bench: the offloaded engine reports no cache counts');
          const hits = sum(stats.hits);
          const requests = sum(stats.requests);
          let sim: { hits: number; requests: number; layerHits: Float64Array } | null = null;
          if (lanes) {
            const corpus: RoutingCorpus = lanes.replay.corpus;
            const s = replayCorpus(corpus, { policy, cacheSize: C, batch: p.batch });
            sim = { hits: s.hits, requests: s.requests, layerHits: s.layerHits };
          }
          const steps = r.msPerToken.n;
          const bytes = diff(before, after, 'bytesH2D');
          const wait = diff(before, after, 'copyWaitMs');
          const dev = r.device;
          const point: OffloadPointResult = {
            ...r,
            cache: C,
            policy,
            routing: lanes ? lanes.description : 'router (random weights)',
            hits,
            requests,
            hitRate: requests ? hits / requests : 0,
            simHits: sim?.hits ?? null,
            simRequests: sim?.requests ?? null,
            simHitRate: sim ? (sim.requests ? sim.hits / sim.requests : 0) : null,
            hitsMatchSim: sim ? Array.from(sim.layerHits).every((h, l) => h === stats.hits[l]) && sim.requests === requests : null,
            slotCopies: diff(before, after, 'slotCopies'),
            stagedCopies: diff(before, after, 'stagedCopies'),
            bytesH2D: bytes,
            copyWaitMs: wait,
            bytesPerForward: bytes / (gens * p.newTokens),
            copyWaitMsPerForward: wait / (gens * p.newTokens),
            enginePeakBytes: Number(dev.enginePeakBytes ?? 0),
            deviceUsedPeakBytes: Number(dev.deviceUsedPeakBytes ?? 0),
            plan: gpuMemoryFor(config, C, shape, o.gpuMemory ?? 0),
          };
          log(
            `bench: cache ${C} ${policy} batch ${p.batch} prompt ${p.prompt}: ${r.msPerToken.mean.toFixed(2)} ms/token, prefill ${r.prefillMs.mean.toFixed(1)} ms, ` +
              `hit rate ${(point.hitRate * 100).toFixed(1)}%${point.simHitRate !== null ? ` (sim ${(point.simHitRate * 100).toFixed(1)}%)` : ''}, ${(bytes / 1e9).toFixed(2)} GB moved, copy wait ${wait.toFixed(0)} ms` +
              (steps === 0 ? ' (no timed steps)' : ''),
          );
          out.push(point);
        }
      }
    } finally {
      engine.close();
    }
  }
  return out;
}

/** Issue 6's figures at batch 1, prompt 128, cache 16: at most 30 ms per output token, peak GPU memory at most 12 GiB. */
export function offloadTargets(points: readonly OffloadPointResult[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const p of points) {
    if (p.cache !== 16 || p.batch !== 1 || p.prompt !== 128) continue;
    out.push({ name: `cache 16 ${p.policy}, batch 1, prompt 128: ms per output token`, value: p.msPerToken.mean, limit: 30, unit: 'ms (<=)', pass: p.msPerToken.mean <= 30 });
    const peak = p.deviceUsedPeakBytes / 2 ** 30;
    out.push({ name: `cache 16 ${p.policy}: peak GPU memory (device-wide)`, value: peak, limit: 12, unit: 'GiB (<=)', pass: peak <= 12 });
  }
  return out;
}

export const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);
const gb = (b: number) => (b / 1e9).toFixed(2);
export const gib = (b: number) => (b / 2 ** 30).toFixed(2);

/** The offload grid as a markdown table. */
export function offloadTable(points: readonly OffloadPointResult[]): string {
  const head = ['cache', 'policy', 'batch', 'prompt', 'new', 'prefill ms', 'ms/token mean', 'p50', 'p99', 'tok/s', 'hit rate', 'sim hit rate', '= sim', 'GB moved', 'copy wait ms', 'engine peak GiB', 'device peak GiB'];
  const rows = points.map((p) => [
    String(p.cache), p.policy, String(p.batch), String(p.prompt), String(p.newTokens), p.prefillMs.mean.toFixed(1), p.msPerToken.mean.toFixed(2),
    p.msPerToken.p50.toFixed(2), p.msPerToken.p99.toFixed(2), p.decodeTokensPerSecond.toFixed(1), pct(p.hitRate), pct(p.simHitRate),
    p.hitsMatchSim === null ? '-' : p.hitsMatchSim ? 'yes' : 'NO', gb(p.bytesH2D), p.copyWaitMs.toFixed(0), gib(p.enginePeakBytes), gib(p.deviceUsedPeakBytes),
  ]);
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
