/**
 * The simulator's prediction for an offload bench point, on exactly the lanes the bench replays: the same
 * traces through fillLanes (warm-up + timed generations, batch lanes each, prompt + new tokens - 1 tokens
 * per lane), the same batches one after another, and the time per output token averaged over the decode
 * steps the bench timed (warm-up generations and prompt positions left out). Used by the offload grid
 * report and by validate --best, so both compare the same quantity.
 */
import { runSimulation, type SimConfig, type SimResult } from '../../../sim/src/index.js';
import { fillLanes, type LaneFill } from '../offload/replay-lanes.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { summarize, type Summary } from './stats.js';

export interface BenchShape {
  batch: number;
  prompt: number;
  newTokens: number;
  warmup: number;
  repeats: number;
}

/** The lanes runOffloadGrid builds for this point (runtime/src/bench/offload-bench.ts). */
export function benchLanes(replays: RoutingReplay[], s: BenchShape): LaneFill {
  return fillLanes(replays, (s.warmup + s.repeats) * s.batch, s.prompt + s.newTokens - 1);
}

/** Decode steps of the timed generations, from a result run with keepSteps. */
export function timedDecodeSteps(r: SimResult, s: Pick<BenchShape, 'batch' | 'prompt' | 'warmup'>): number[] {
  if (!r.perStep) throw new Error('timedDecodeSteps: the simulation was run without keepSteps');
  const { ms, pos, seq } = r.perStep;
  const out: number[] = [];
  for (let i = 0; i < ms.length; i++) if (pos[i] >= s.prompt && Math.floor(seq[i] / s.batch) >= s.warmup) out.push(ms[i]);
  return out;
}

export interface BenchPrediction {
  result: SimResult;
  /** ms per decode step over the timed decode steps (the bench's msPerToken) */
  msPerToken: Summary;
}

/** One configuration on a bench point's lanes. */
export function predictBenchPoint(lanes: LaneFill, s: BenchShape, config: Omit<SimConfig, 'batch' | 'keepSteps'>): BenchPrediction {
  const result = runSimulation(lanes.replay.corpus, { ...config, batch: s.batch, keepSteps: true });
  return { result, msPerToken: summarize(timedDecodeSteps(result, s)) };
}

/** A point as the offload bench and the miss-grid report describe it (issue 12: miss mode, CPU workers, fill). */
export interface SimPointSpec {
  policy: SimConfig['policy'];
  cache: number;
  batch: number;
  prompt: number;
  warmup: number;
  miss: SimConfig['miss'];
  calibration: SimConfig['calibration'];
  /** the runtime's CPU workers (the profile's cpu.workers otherwise) */
  cpuWorkers?: number;
  /** cpu/hybrid: background fills of CPU-computed experts (default true) */
  cpuFill?: boolean;
}

export interface SimPrediction {
  msPerToken: number;
  hitRate: number;
  result: SimResult;
}

/** The simulator on lanes already built (corpus), with the run's CPU worker count and fill mode. */
export function simulatePoint(corpus: LaneFill['replay']['corpus'], s: SimPointSpec): SimPrediction {
  const calibration = s.cpuWorkers === undefined ? s.calibration : { ...s.calibration, cpu: { ...s.calibration.cpu, workers: s.cpuWorkers } };
  const result = runSimulation(corpus, { policy: s.policy, cacheSize: s.cache, batch: s.batch, prefetch: 'none', miss: s.miss, calibration, keepSteps: true, cpuFill: s.cpuFill ?? true });
  const steps = timedDecodeSteps(result, s);
  return { msPerToken: steps.length ? steps.reduce((a, b) => a + b, 0) / steps.length : NaN, hitRate: result.hitRate, result };
}
