/**
 * The simulator's prediction for a measured offload bench point: the same lanes the bench replayed, the
 * same policy, cache, batch and miss mode, and a calibration profile whose CPU worker count is the run's;
 * the mean over the decode steps the bench timed (warm-up generations and prompt positions left out, as
 * engine-bench.ts times them). Used by the bench itself (simulated beside measured, in the same run) and
 * by the offload grid report (regenerated from committed bench files).
 */
import type { CostModel } from '../../../sim/src/cost/calibration.js';
import { runSimulation, type SimResult } from '../../../sim/src/index.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import type { RoutingCorpus } from '../../../traces/src/sequences.js';

export interface SimPointSpec {
  policy: PolicyName;
  cache: number;
  batch: number;
  prompt: number;
  warmup: number;
  miss: MissMode;
  calibration: CostModel;
  /** the runtime's CPU workers (the profile's cpu.workers otherwise) */
  cpuWorkers?: number;
  /** cpu/hybrid: background fills of CPU-computed experts (default true) */
  cpuFill?: boolean;
}

export interface SimPrediction {
  msPerToken: number;
  hitRate: number;
  cpuExpertsPerStep: number;
  result: SimResult;
}

export function simulatePoint(corpus: RoutingCorpus, s: SimPointSpec): SimPrediction {
  const calibration = s.cpuWorkers === undefined ? s.calibration : { ...s.calibration, cpu: { ...s.calibration.cpu, workers: s.cpuWorkers } };
  const r = runSimulation(corpus, { policy: s.policy, cacheSize: s.cache, batch: s.batch, prefetch: 'none', miss: s.miss, calibration, keepSteps: true, cpuFill: s.cpuFill ?? true });
  const { ms, pos, seq } = r.perStep!;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < ms.length; i++) {
    if (pos[i] >= s.prompt && Math.floor(seq[i] / s.batch) >= s.warmup) {
      sum += ms[i];
      n++;
    }
  }
  return { msPerToken: n ? sum / n : NaN, hitRate: r.hitRate, cpuExpertsPerStep: r.trace.steps ? r.cpuExperts / r.trace.steps : 0, result: r };
}
