/**
 * The measured part of `validate --best`: the plan's runs through the CUDA runtime, with the offload bench's
 * own machinery (runOffloadGrid: one engine per cache size, each point from a cold cache, the routing
 * replayed on the lanes fillLanes builds, which are the lanes the plan simulated). A MeasureFn is injected,
 * so the bookkeeping around it is tested on the CPU with a fake one.
 */
import type { ModelConfig } from '../model/config.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { runOffloadGrid } from '../bench/offload-bench.js';
import { makeGrid, makePrompts, type GridPoint } from '../bench/grid.js';
import { configKey, type Configuration } from './space.js';
import { BENCH_RUN, type ValidationPlan } from './plan.js';

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
}

export type MeasureFn = (plan: ValidationPlan, stop: { requested: boolean }, log: (line: string) => void) => Promise<MeasuredRun[]>;

const pointId = (batch: number, prompt: number, policy: string, cache: number) => `${batch}/${prompt}/${policy}/${cache}`;

/** The runs of the plan through the CUDA runtime on the checkpoint `model`. Stops before the next point once `stop.requested`. */
export function cudaMeasure(model: string, config: ModelConfig, replays: RoutingReplay[]): MeasureFn {
  return async (plan, stop, log) => {
    const wanted = new Set<string>();
    const caches = new Set<number>();
    const policies = new Set<Configuration['policy']>();
    for (const p of plan.points)
      for (const r of p.runs) {
        wanted.add(pointId(p.batch, p.prompt, r.config.policy, r.config.cache));
        caches.add(r.config.cache);
        policies.add(r.config.policy);
      }
    const batches = [...new Set(plan.points.map((p) => p.batch))];
    const prompts = [...new Set(plan.points.map((p) => p.prompt))];
    const grid: GridPoint[] = makeGrid(batches, prompts, [BENCH_RUN.newTokens]);
    const points = await runOffloadGrid(
      model,
      config,
      grid,
      (p) => makePrompts(p, 1, config.vocabSize, config.bosTokenId, config.eosTokenId),
      BENCH_RUN.repeats,
      BENCH_RUN.warmup,
      {
        caches: [...caches],
        policies: [...policies],
        gpuMemory: plan.budgetBytes,
        routing: replays,
        select: (cache, policy, p) => !stop.requested && wanted.has(pointId(p.batch, p.prompt, policy, cache)),
      },
      log,
    );
    return points.map((p) => ({
      batch: p.batch,
      prompt: p.prompt,
      // The runtime runs misses fetched, no prefetch, bf16 experts today (space.ts); issue 12's modes extend this.
      key: configKey({ policy: p.policy, cache: p.cache, prefetch: 'none', miss: 'fetch', dtype: 'bf16' }),
      msPerToken: { mean: p.msPerToken.mean, p50: p.msPerToken.p50, p99: p.msPerToken.p99 },
      decodeTokensPerSecond: p.decodeTokensPerSecond,
      hitRate: p.hitRate,
      simHitRate: p.simHitRate,
      hitsMatchSim: p.hitsMatchSim,
      deviceUsedPeakBytes: p.deviceUsedPeakBytes,
      routing: p.routing,
      device: typeof p.device.name === 'string' ? p.device.name : 'cuda',
    }));
  };
}
