/**
 * CPU measurements: one routed expert through the CPU expert path (moe::mlp_forward, AVX-512/BF16 where
 * the CPU has it) for each token count and thread count alone, then, for each thread count t, floor(N / t)
 * experts at once (N hardware threads) to find how many the CPU runs at once to best effect.
 */
import type { NativeModelConfig } from '../engine/native-binding.js';
import { defaultThreadsPerWorker } from '../offload/miss-options.js';
import type { Progress } from '../../../core/src/progress.js';
import { chooseCpuWorkers, median, type CpuWorkerCandidate } from './fit.js';
import type { NativeCalibrate, NativeCpuCalibrator } from './native.js';
import type { CalibratePlan } from './plan.js';
import { sampled, type RawCpu, type RawCpuExpert } from './raw.js';

export interface CpuResult {
  raw: RawCpu;
  /** the chosen configuration and its per-expert curve */
  workers: number;
  threadsPerWorker: number;
  makespanMs: number;
  candidates: CpuWorkerCandidate[];
  expertMs: Array<[number, number]>;
}

/** Experts a CPU calibrator cycles through: enough bytes that each expert's weights come from DRAM. */
export function cpuPoolExperts(plan: CalibratePlan, expertBytes: number): number {
  return Math.max(2, Math.min(64, Math.ceil(plan.cpuPoolBytes / expertBytes)));
}

/** Experts per sample so that one sample lasts about plan.cpuSampleMs, from one untimed estimate. */
export function cpuSampleIters(cal: NativeCpuCalibrator, tokens: number, threads: number, workers: number, plan: CalibratePlan): number {
  const est = median(cal.expertMs(tokens, threads, workers, 1, 1));
  return Math.max(2, Math.min(500, Math.ceil(plan.cpuSampleMs / Math.max(est, 1e-3))));
}

/** How many measurements measureCpu makes (for the progress bar). */
export function cpuSteps(plan: CalibratePlan, threads: number[]): number {
  return threads.length * plan.cpuTokens.length + threads.length + plan.cpuTokens.length;
}

export function measureCpu(
  native: NativeCalibrate,
  config: NativeModelConfig,
  expertBytes: number,
  plan: CalibratePlan,
  threads: number[],
  topK: number,
  progress: Progress,
  kernel = 'auto',
): CpuResult {
  const info = native.cpuInfo();
  const pool = cpuPoolExperts(plan, expertBytes);
  const cal = new native.CpuCalibrator(config, pool, kernel);
  const experts: RawCpuExpert[] = [];
  const time = (tokens: number, t: number, workers: number): RawCpuExpert => {
    const iters = cpuSampleIters(cal, tokens, t, workers, plan);
    const r = { tokens, threads: t, workers, ...sampled(cal.expertMs(tokens, t, workers, iters, plan.repeats), median) };
    experts.push(r);
    progress.tick();
    return r;
  };
  for (const t of threads) for (const n of plan.cpuTokens) time(n, t, 1);
  const candidates: CpuWorkerCandidate[] = [];
  const tokens1 = plan.cpuTokens[0];
  for (const t of threads) {
    // t threads names the candidate's worker count; it is timed at the threads the runtime then gives each
    // worker (defaultThreadsPerWorker: one hardware thread left to the host thread), not at t. For the same
    // reason at most N - 1 workers: 16 workers of 1 thread on 16 (an H100 host whose threads scaled poorly,
    // reports/bench/h100-2026-12-07c/call2/, chose them) would leave the host thread none.
    const workers = Math.max(1, Math.min(Math.floor(info.hardwareThreads / t), info.hardwareThreads - 1));
    const runThreads = defaultThreadsPerWorker(info.hardwareThreads, workers);
    if (candidates.some((c) => c.workers === workers)) {
      progress.tick();  // two --threads values with one worker count: one candidate
      continue;
    }
    const have = experts.find((e) => e.threads === runThreads && e.tokens === tokens1 && e.workers === workers);
    const r = have ?? time(tokens1, runThreads, workers);
    if (have) progress.tick();
    candidates.push({ workers, threads: runThreads, msPerExpert: r.medianMs });
  }
  const best = chooseCpuWorkers(candidates, topK);
  const curve: Array<[number, number]> = [];
  for (const n of plan.cpuTokens) {
    const have = experts.find((e) => e.tokens === n && e.threads === best.threads && e.workers === best.workers);
    const r = have ?? time(n, best.threads, best.workers);
    if (have) progress.tick();
    curve.push([n, r.medianMs]);
  }
  return {
    raw: { info, isa: cal.isa(), poolExperts: pool, threads, experts },
    workers: best.workers,
    threadsPerWorker: best.threads,
    makespanMs: best.makespanMs,
    candidates,
    expertMs: curve,
  };
}
