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
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
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

const pointId = (batch: number, prompt: number, policy: string, cache: number, miss: string) => `${batch}/${prompt}/${policy}/${cache}/${miss}`;

/** The runs of the plan through the CUDA runtime on the checkpoint `model`. Stops before the next point once `stop.requested`. */
export function cudaMeasure(model: string, config: ModelConfig, replays: RoutingReplay[]): MeasureFn {
  return async (plan, stop, log) => {
    const wanted = new Set<string>();
    const caches = new Set<number>();
    const policies = new Set<Configuration['policy']>();
    const misses = new Set<MissMode>();
    for (const p of plan.points)
      for (const r of p.runs) {
        wanted.add(pointId(p.batch, p.prompt, r.config.policy, r.config.cache, r.config.miss));
        caches.add(r.config.cache);
        policies.add(r.config.policy);
        misses.add(r.config.miss);
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
        // the simulator's default profile is the plan's; CPU workers and fills at the runtime's defaults, as the plan simulated them
        misses: [...misses],
        calibration: defaultCalibration(),
        select: (cache, policy, p, miss) => !stop.requested && wanted.has(pointId(p.batch, p.prompt, policy, cache, miss)),
      },
      log,
    );
    return points.map((p) => ({
      batch: p.batch,
      prompt: p.prompt,
      // No prefetch and bf16 experts in the runtime today (space.ts).
      key: configKey({ policy: p.policy, cache: p.cache, prefetch: 'none', miss: p.miss, dtype: 'bf16' }),
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
