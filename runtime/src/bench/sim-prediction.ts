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

/** Indices of the timed generations' decode steps, from a result run with keepSteps. */
function timedDecodeIndices(r: SimResult, s: Pick<BenchShape, 'batch' | 'prompt' | 'warmup'>): number[] {
  if (!r.perStep) throw new Error('timedDecodeSteps: the simulation was run without keepSteps');
  const { pos, seq } = r.perStep;
  const out: number[] = [];
  for (let i = 0; i < pos.length; i++) if (pos[i] >= s.prompt && Math.floor(seq[i] / s.batch) >= s.warmup) out.push(i);
  return out;
}

/** Decode steps of the timed generations, from a result run with keepSteps. */
export function timedDecodeSteps(r: SimResult, s: Pick<BenchShape, 'batch' | 'prompt' | 'warmup'>): number[] {
  return timedDecodeIndices(r, s).map((i) => r.perStep!.ms[i]);
}

export interface BenchPrediction {
  result: SimResult;
  /** ms per decode step over the timed decode steps (the bench's msPerToken) */
  msPerToken: Summary;
  /** per MoE layer of those steps, as the bench's layerHeadMs / layerTailMs (0 without layers) */
  layerHeadMs: number;
  layerTailMs: number;
  /** how many of those steps ran as resident steps (the bench's residentSteps) */
  residentSteps: number;
  /** GPU time of routed-expert work per timed step (the bench's expertGpuMsPerStep when launches are timed) */
  expertGpuMsPerStep: number;
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
  const steps = timedDecodeIndices(result, s);
  const per = result.perStep!;
  let head = 0, tail = 0, n = 0, resident = 0, expert = 0;
  for (const i of steps) {
    expert += per.expertGpuMs[i];
    head += per.layerHeadMs[i];
    tail += per.layerTailMs[i];
    n += per.layerTails[i];
    resident += per.resident[i];
  }
  return { result, msPerToken: summarize(steps.map((i) => per.ms[i])), layerHeadMs: n ? head / n : 0, layerTailMs: n ? tail / n : 0, residentSteps: resident, expertGpuMsPerStep: steps.length ? expert / steps.length : 0 };
}

/** The profile with the run's CPU worker count (issue 12: the runtime's pool may differ from the profile's). */
export function withCpuWorkers(calibration: SimConfig['calibration'], workers: number | null | undefined): SimConfig['calibration'] {
  return workers === undefined || workers === null ? calibration : { ...calibration, cpu: { ...calibration.cpu, workers } };
}
