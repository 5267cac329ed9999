/**
 * calibrate's CPU worker candidates are timed at the threads the runtime gives each worker (one hardware thread
 * left to the host thread: defaultThreadsPerWorker, the rule resolveMissOptions applies), so the profile's
 * per-expert times are those of the pool that runs. A fake native calibrator on a 16-thread host records what
 * is timed. Before this, 4 workers were timed at 4 threads while the runtime ran them at 3 (an H100 host: int8
 * CPU jobs 0.69 ms in the runtime's log against calibrate's 0.54).
 */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { cpuSteps, measureCpu } from '../../src/calibrate/measure-cpu.js';
import { makePlan } from '../../src/calibrate/plan.js';
import type { NativeCalibrate } from '../../src/calibrate/native.js';
import { defaultThreadsPerWorker, resolveMissOptions } from '../../src/offload/miss-options.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';

/** ms per expert: 4 / threads (bandwidth shared by the workers running at once: x (1 + 0.1 x (workers - 1))) x tokens^0.5 */
function fakeNative(hardwareThreads: number, timed: Array<[number, number, number]>): NativeCalibrate {
  return {
    cpuInfo: () => ({ hardwareThreads, features: 'test' }),
    CpuCalibrator: class {
      isa() {
        return 'test';
      }
      expertMs(tokens: number, threads: number, workers: number, iters: number, repeats: number) {
        if (iters > 1) timed.push([tokens, threads, workers]);
        return Float64Array.from({ length: repeats }, () => (4 / threads) * (1 + 0.1 * (workers - 1)) * Math.sqrt(tokens));
      }
    },
  } as unknown as NativeCalibrate;
}

describe('CPU worker candidates at the runtime\'s threads', () => {
  it('16 hardware threads: 15, 4, 2 and 1 workers timed at 1, 3, 7 and 15 threads (never more workers than leave the host thread one); the profile curve at the chosen shape', () => {
    const timed: Array<[number, number, number]> = [];
    const plan = makePlan(true);
    let ticks = 0;
    const r = measureCpu(fakeNative(16, timed), {} as never, 17_301_504, plan, [1, 4, 8, 16], 6, { tick: () => ticks++, done: () => {} } as never);
    expect(r.candidates.map((c) => [c.workers, c.threads])).toEqual([[15, 1], [4, 3], [2, 7], [1, 15]]);
    for (const c of r.candidates) expect(c.threads).toBe(defaultThreadsPerWorker(16, c.workers));
    // makespans of 6 experts: 15 x 1 thread: 1 round of 4 x 2.4 = 9.6; 4 x 3: 2 rounds of 1.73 = 3.47;
    // 2 x 7: 3 rounds of 0.629 = 1.89; 1 x 15: 6 x 0.267 = 1.6 -> one worker of 15 threads
    expect([r.workers, r.threadsPerWorker]).toEqual([1, 15]);
    expect(r.expertMs[0][1]).toBeCloseTo(4 / 15, 9);
    expect(timed.some(([, t, w]) => t === 15 && w === 1)).toBe(true);
    expect(ticks).toBe(cpuSteps(plan, [1, 4, 8, 16]));
  });

  it('two --threads values that give one worker count make one candidate (and the progress count holds)', () => {
    const plan = makePlan(true);
    let ticks = 0;
    const r = measureCpu(fakeNative(8, []), {} as never, 17_301_504, plan, [5, 8], 6, { tick: () => ticks++, done: () => {} } as never);
    expect(r.candidates.map((c) => [c.workers, c.threads])).toEqual([[1, 7]]);
    expect(ticks).toBe(cpuSteps(plan, [5, 8]));
  });

  it('the runtime gives a worker count without --cpu-threads the same threads (same rule, this machine)', () => {
    const hw = availableParallelism();
    const spec = resolveMissOptions({ mode: 'hybrid', workers: 1, profile: defaultCalibration() }, 'cuda', true)!;
    expect(spec.threadsPerWorker).toBe(defaultThreadsPerWorker(hw, 1));
    expect(defaultThreadsPerWorker(16, 4)).toBe(3);
    expect(defaultThreadsPerWorker(16, 16)).toBe(1);
  });
});
