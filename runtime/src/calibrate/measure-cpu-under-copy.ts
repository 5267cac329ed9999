/**
 * CPU experts beside a busy copy engine (issue 12). The offloaded runtime computes missed experts on the
 * CPU while its demand copies and background fills stream other experts from the same pinned host memory
 * (both read host DRAM); on the H200 host a job logged inside the runtime took 0.56 ms against calibrate's
 * 0.39 for the same expert alone. This measures that directly, at the chosen worker shape, side by side:
 * for each token count, the experts alone, then with CudaCalibrator.copyLoad keeping host-to-device copies
 * back to back. The profile's `cpu.expertMsUnderCopy` is the second curve; the timing model uses it for
 * the part of a job that overlaps the copy engine's work.
 */
import type { NativeModelConfig } from '../engine/native-binding.js';
import type { Progress } from '../../../core/src/progress.js';
import { median } from './fit.js';
import type { NativeCalibrate } from './native.js';
import type { CalibratePlan } from './plan.js';
import { cpuPoolExperts, cpuSampleIters, type CpuResult } from './measure-cpu.js';
import { sampled, type Sampled } from './raw.js';

export interface RawCpuUnderCopy {
  tokens: number;
  threads: number;
  workers: number;
  alone: Sampled;
  underCopy: Sampled;
}

export interface CpuUnderCopyResult {
  raw: RawCpuUnderCopy[];
  /** [tokens, median ms] with the copy load running */
  underCopy: Array<[number, number]>;
}

export function cpuUnderCopySteps(plan: CalibratePlan): number {
  return plan.cpuJobTokens.length;
}

/** null when the addon predates CudaCalibrator.copyLoad. */
export function measureCpuUnderCopy(
  native: NativeCalibrate,
  config: NativeModelConfig,
  expertBytes: number,
  plan: CalibratePlan,
  cpu: CpuResult,
  progress: Progress,
): CpuUnderCopyResult | null {
  const gpu = new native.CudaCalibrator(config, 16, 1);
  try {
    if (!gpu.copyLoad) {
      for (let i = 0; i < plan.cpuJobTokens.length; i++) progress.tick();
      return null;
    }
    const cal = new native.CpuCalibrator(config, cpuPoolExperts(plan, expertBytes), 'auto');
    const { threadsPerWorker: t, workers: w } = cpu;
    const raw: RawCpuUnderCopy[] = [];
    for (const n of plan.cpuJobTokens) {
      const iters = cpuSampleIters(cal, n, t, w, plan);
      const alone = sampled(cal.expertMs(n, t, w, iters, plan.repeats), median);
      gpu.copyLoad(true);
      let underCopy: Sampled;
      try {
        underCopy = sampled(cal.expertMs(n, t, w, iters, plan.repeats), median);
      } finally {
        gpu.copyLoad(false);
      }
      raw.push({ tokens: n, threads: t, workers: w, alone, underCopy });
      progress.tick();
    }
    return { raw, underCopy: raw.map((r) => [r.tokens, Number(r.underCopy.medianMs.toPrecision(4))]) };
  } finally {
    gpu.close();
  }
}
