/**
 * `--cpu-estimate measured` (issue 12: the miss rule's costs are "the calibration profile, corrected by what
 * the run measures"; opt-in until a device run has measured it against `profile`, the default, side by
 * side: every committed figure was measured with the profile's times): the profile's CPU expert times are
 * scaled by a factor f, a running mean of each finished CPU job's measured time over the profile's time for
 * its rows. A host whose CPU runs
 * slower inside the runtime than calibrate timed it (idle workers waking, another tenant, the copy engine
 * beside it: int8 jobs of 0.36 ms against calibrate's 0.30 on an H100 host, reports/bench/h100-2026-12-07c)
 * then puts fewer misses on the CPU, and a faster one more.
 *
 * f starts at 1 in each session (each simulation); every job moves it by WEIGHT of the difference (an
 * exponential mean over about the last 32 jobs, a step of batch 1's CPU experts); each ratio is clamped to
 * [MIN_RATIO, MAX_RATIO] so that one job the OS stalled cannot swing the rule. Jobs are observed when their
 * layer joins, in the layer's decision order (ascending expert), so the next layer decides with them.
 * native/include/moe/offload/miss_policy.h CpuCorrection is the same arithmetic in C++; the runtime logs f
 * with each decision and runtime/src/offload/miss-log-check.ts replays the logged jobs through this class.
 */
export const CPU_ESTIMATES = ['measured', 'profile'] as const;
export type CpuEstimate = (typeof CPU_ESTIMATES)[number];
export const DEFAULT_CPU_ESTIMATE: CpuEstimate = 'profile';

export class CpuCorrection {
  static readonly WEIGHT = 1 / 32;
  static readonly MIN_RATIO = 0.25;
  static readonly MAX_RATIO = 4;
  factor = 1;
  constructor(readonly on: boolean) {}

  /** A finished job: its measured time and the profile's time for its rows (without the activations' round trip). */
  observe(measuredMs: number, profileMs: number): void {
    if (!this.on || !(profileMs > 0) || !(measuredMs >= 0)) return;
    const ratio = Math.min(CpuCorrection.MAX_RATIO, Math.max(CpuCorrection.MIN_RATIO, measuredMs / profileMs));
    this.factor += CpuCorrection.WEIGHT * (ratio - this.factor);
  }
}
