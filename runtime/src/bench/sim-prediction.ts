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

/**
 * The CUDA runtime's CPU path takes steps of at most this many rows (native/src/cuda_backend/
 * cuda_backend_impl.h kCpuMaxRows): a prefill of more rows fetches every miss.
 */
export const CPU_PATH_MAX_ROWS = 64;

/** One configuration on a bench point's lanes (its prefill fetching, as the runtime's does). */
export function predictBenchPoint(lanes: LaneFill, s: BenchShape, config: Omit<SimConfig, 'batch' | 'keepSteps'>): BenchPrediction {
  const decodeFrom = s.batch * s.prompt > CPU_PATH_MAX_ROWS ? s.prompt : 0;
  const result = runSimulation(lanes.replay.corpus, { decodeFrom, ...config, batch: s.batch, keepSteps: true });
  return { result, msPerToken: summarize(timedDecodeSteps(result, s)) };
}

/** The profile with the run's CPU worker count (issue 12: the runtime's pool may differ from the profile's). */
export function withCpuWorkers(calibration: SimConfig['calibration'], workers: number | null | undefined): SimConfig['calibration'] {
  return workers === undefined || workers === null ? calibration : { ...calibration, cpu: { ...calibration.cpu, workers } };
}
