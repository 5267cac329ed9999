/**
 * The measured part of `validate --best`: the plan's runs through the CUDA runtime, with the offload bench's
 * own machinery (runOffloadGrid: one engine per cache size, each point from a cold cache, the routing
 * replayed on the lanes fillLanes builds, which are the lanes the plan simulated). A MeasureFn is injected,
 * so the bookkeeping around it is tested on the CPU with a fake one.
 */
import type { ModelConfig } from '../model/config.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import type { PrefetchOptions } from '../offload/prefetch-options.js';
import { runOffloadGrid } from '../bench/offload-bench.js';
import { makeGrid, makePrompts, type GridPoint } from '../bench/grid.js';
import { configKey, type Configuration } from './space.js';
import type { CostModel } from '../../../sim/src/cost/calibration.js';
import { DEFAULT_EXPERT_GROUP } from '../../../sim/src/cost/expert-layout.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import { BENCH_RUN, VALIDATE_CPU_ADMIT, type ValidationPlan } from './plan.js';

export interface MeasuredRun {
  batch: number;
  prompt: number;
  key: string;
  msPerToken: { mean: number; p50: number; p99: number };
  decodeTokensPerSecond: number;
  hitRate: number;
  /** the bench's own replay of the lanes through the simulator's cache: must equal the plan's hit rate */
  simHitRate: number | null;
  hitsMatchSim: boolean | null;
  deviceUsedPeakBytes: number;
  routing: string;
  device: string;
  /** with a prefetcher: the controller's decisions (precision = useful / issued, recall = useful / needed) */
  prefetch?: { issued: number; useful: number; precision: number | null; recall: number | null; wastedBytes: number } | null;
}

export type MeasureFn = (plan: ValidationPlan, stop: { requested: boolean }, log: (line: string) => void) => Promise<MeasuredRun[]>;

const pointId = (batch: number, prompt: number, policy: string, cache: number, miss: string) => `${batch}/${prompt}/${policy}/${cache}/${miss}`;

/** The engine's prefetcher for a planned configuration (oracle at the simulator's default lookahead of 1). */
function prefetchFor(name: Configuration['prefetch'], predictor: string | undefined): PrefetchOptions {
  if (name === 'predicted') {
    if (predictor === undefined) throw new Error('validate: the plan has a predicted run but no predictor (space.ts keeps predicted out of the runtime set without --predictor)');
    return { name, predictor };
  }
  if (name === 'next-gate') throw new Error('validate: the plan has a next-gate run, which cannot run under routing replay (space.ts)');
  return { name };
}

/** One offload grid of the measurement: the plan's runs of one (expert dtype, prefetcher). */
export interface MeasureGroup {
  dtype: Configuration['dtype'];
  /** int4's inputs per group (the sweep's; the default for a bf16 baseline outside the sweep) */
  group: number;
  prefetch: PrefetchOptions;
  /** batch/prompt/policy/cache/miss of each run */
  wanted: Set<string>;
  caches: number[];
  policies: Configuration['policy'][];
  misses: MissMode[];
}

/**
 * The plan's runs as offload grids, one per (expert dtype, prefetcher): the bench's select takes cache,
 * policy, point and miss; the dtype and the prefetcher are the grid's own dimensions. predicted runs with the
 * plan's predictor (the one its simulation used).
 */
export function measureGroups(plan: ValidationPlan): MeasureGroup[] {
  const predictor = plan.predictor ?? undefined;
  const groups = new Map<string, MeasureGroup>();
  for (const p of plan.points)
    for (const r of p.runs) {
      const id = `${r.config.dtype}/${r.config.prefetch}`;
      if (!groups.has(id)) {
        const group = plan.dtypes.find((d) => d.dtype === r.config.dtype)?.group ?? DEFAULT_EXPERT_GROUP;
        groups.set(id, { dtype: r.config.dtype, group, prefetch: prefetchFor(r.config.prefetch, predictor), wanted: new Set(), caches: [], policies: [], misses: [] });
      }
      const g = groups.get(id)!;
      g.wanted.add(pointId(p.batch, p.prompt, r.config.policy, r.config.cache, r.config.miss));
      if (!g.caches.includes(r.config.cache)) g.caches.push(r.config.cache);
      if (!g.policies.includes(r.config.policy)) g.policies.push(r.config.policy);
      if (!g.misses.includes(r.config.miss)) g.misses.push(r.config.miss);
    }
  return [...groups.values()];
}

/**
 * The runs of the plan through the CUDA runtime on the checkpoint `model`. Stops before the next point once
 * `stop.requested`. `calibration`: the profile the plan simulated with (the runtime's hybrid rule and the
 * bench's simulated column use it too).
 */
/** `quantizedFile`: the quantized experts file of the int8 / int4 re-runs (`auto`; absent: quantized at each load). */
export function cudaMeasure(model: string, config: ModelConfig, replays: RoutingReplay[], calibration: CostModel, quantizedFile?: string): MeasureFn {
  return async (plan, stop, log) => {
    const groups = measureGroups(plan);
    const batches = [...new Set(plan.points.map((p) => p.batch))];
    const prompts = [...new Set(plan.points.map((p) => p.prompt))];
    const grid: GridPoint[] = makeGrid(batches, prompts, [BENCH_RUN.newTokens]);
    const out: MeasuredRun[] = [];
    for (const g of groups) {
      if (stop.requested) break;
      log(`validate: ${g.dtype} experts, prefetch ${g.prefetch.name}: ${g.wanted.size} runs`);
      const points = await runOffloadGrid(
        model,
        config,
        grid,
        (p) => makePrompts(p, 1, config.vocabSize, config.bosTokenId, config.eosTokenId),
        BENCH_RUN.repeats,
        BENCH_RUN.warmup,
        {
          caches: g.caches,
          formats: [{ dtype: g.dtype, group: g.group }],
          quantizedFile,
          policies: g.policies,
          gpuMemory: plan.budgetBytes,
          routing: replays,
          // the plan's profile (the grid takes this dtype's figures from it, as the plan did: costModelForDtype);
          // CPU workers at the runtime's defaults, fills as the plan simulated them (VALIDATE_CPU_ADMIT)
          misses: g.misses,
          cpuFills: [VALIDATE_CPU_ADMIT ? 'background' : 'none'],
          calibration,
          prefetches: [g.prefetch],
          select: (cache, policy, p, miss) => !stop.requested && g.wanted.has(pointId(p.batch, p.prompt, policy, cache, miss)),
        },
        log,
      );
      for (const p of points)
        out.push({
          batch: p.batch,
          prompt: p.prompt,
          key: configKey({ policy: p.policy, cache: p.cache, prefetch: p.prefetch as Configuration['prefetch'], miss: p.miss, dtype: p.expertDtype }),
          msPerToken: { mean: p.msPerToken.mean, p50: p.msPerToken.p50, p99: p.msPerToken.p99 },
          decodeTokensPerSecond: p.decodeTokensPerSecond,
          hitRate: p.hitRate,
          simHitRate: p.simHitRate,
          hitsMatchSim: p.hitsMatchSim,
          deviceUsedPeakBytes: p.deviceUsedPeakBytes,
          routing: p.routing,
          device: typeof p.device.name === 'string' ? p.device.name : 'cuda',
          prefetch: p.prefetchStats ? { issued: p.prefetchStats.issued, useful: p.prefetchStats.useful, precision: p.prefetchStats.precision, recall: p.prefetchStats.recall, wastedBytes: p.prefetchStats.wastedBytes } : null,
        });
    }
    return out;
  };
}
