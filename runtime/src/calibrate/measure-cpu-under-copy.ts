/**
 * CPU experts beside a busy copy engine (issue 12). The offloaded runtime computes missed experts on the
 * CPU while its demand copies and background fills stream other experts from the same pinned host memory
 * (both read host DRAM); on the H200 host a job logged inside the runtime took 0.56 ms against calibrate's
 * 0.39 for the same expert alone. This measures that directly, at the chosen worker shape, side by side:
 * for each token count, the experts alone, then with CudaCalibrator.copyLoad keeping host-to-device copies
 * back to back. The profile's `cpu.expertMsUnderCopy` is the second curve; the timing model uses it for
 * a job that starts while the copy engine is busy. The other direction is measured in the same loop: the
 * copy load's own rate while the CPU experts run, against the same load with the CPU idle (measured first,
 * as long as one CPU sample), gives `transfer.copySlowdownUnderCpu`.
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
  /** the copy load's mean ms per expert while these CPU experts ran (absent on older builds) */
  copyMsBesideCpu?: number;
}

export interface CpuUnderCopyResult {
  raw: RawCpuUnderCopy[];
  /** [tokens, median ms] with the copy load running */
  underCopy: Array<[number, number]>;
  /** the copy load alone (ms per expert), and [CPU job tokens, copy time beside them / alone] (null: older build) */
  copyMsAlone: number | null;
  copySlowdown: Array<[number, number]> | null;
}

/** Holds the calling thread for `ms` (the copy load runs on its own thread meanwhile). */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
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
  kernel = 'auto',
): CpuUnderCopyResult | null {
  const gpu = new native.CudaCalibrator(config, 16, 1);
  try {
    if (!gpu.copyLoad) {
      for (let i = 0; i < plan.cpuJobTokens.length; i++) progress.tick();
      return null;
    }
    const cal = new native.CpuCalibrator(config, cpuPoolExperts(plan, expertBytes), kernel);
    const { threadsPerWorker: t, workers: w } = cpu;
    const raw: RawCpuUnderCopy[] = [];
    let copyMsAlone: number | null = null;
    for (const n of plan.cpuJobTokens) {
      const iters = cpuSampleIters(cal, n, t, w, plan);
      const t0 = performance.now();
      const alone = sampled(cal.expertMs(n, t, w, iters, plan.repeats), median);
      if (copyMsAlone === null) {
        // the copy load with the CPU idle, for as long as the sample just taken
        gpu.copyLoad(true);
        sleepMs(Math.max(50, performance.now() - t0));
        const ms = gpu.copyLoad(false);
        copyMsAlone = typeof ms === 'number' && ms > 0 ? ms : null;
      }
      gpu.copyLoad(true);
      let underCopy: Sampled;
      let copyMs: number | undefined;
      try {
        underCopy = sampled(cal.expertMs(n, t, w, iters, plan.repeats), median);
      } finally {
        copyMs = gpu.copyLoad(false) ?? undefined;
      }
      raw.push({ tokens: n, threads: t, workers: w, alone, underCopy, ...(typeof copyMs === 'number' && copyMs > 0 ? { copyMsBesideCpu: copyMs } : {}) });
      progress.tick();
    }
    const slow = copyMsAlone === null ? null : raw.filter((r) => r.copyMsBesideCpu !== undefined).map((r): [number, number] => [r.tokens, Number((r.copyMsBesideCpu! / copyMsAlone!).toPrecision(4))]);
    return {
      raw,
      underCopy: raw.map((r) => [r.tokens, Number(r.underCopy.medianMs.toPrecision(4))]),
      copyMsAlone,
      copySlowdown: slow && slow.length > 0 ? slow : null,
    };
  } finally {
    gpu.close();
  }
}
