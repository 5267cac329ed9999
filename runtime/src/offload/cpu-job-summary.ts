/**
 * What a miss log says of the CPU jobs that ran: their mean measured wall time by token count, and how they
 * compare with the profile's times the miss rule was given. The bench keeps this per point (from its timed
 * generations' rows of the whole log, not the committed sample, which holds the warm-up's first steps), so the simulator can be given the CPU the point really ran on
 * (sim-vs-bench --cpu-jobs point), and cpu-from-miss-log builds a profile's cpu.jobMs from the same means.
 */
import { interpolate } from '../../../sim/src/cost/cost-model.js';
import type { TokenCurve } from '../../../sim/src/cost/calibration.js';

/** The columns of a miss log (NativeMissLog, or a committed sample's columns) this summary reads. */
export interface CpuJobColumns {
  rows: number;
  /** the forward each decision belongs to (the engine's count of forwards finished before it) */
  step?: ArrayLike<number>;
  tokens: ArrayLike<number>;
  onCpu: ArrayLike<number>;
  cpuMeasuredMs: ArrayLike<number>;
  /** absent in logs from before the CPU correction (their factor was 1) */
  cpuFactor?: ArrayLike<number>;
}

export interface CpuJobSummary {
  jobs: number;
  /** mean measured ms by token count, for counts with at least `minSamples` jobs */
  jobMs: TokenCurve;
  /** sum of measured ms over the sum of the profile's ms for the same jobs (null without jobs) */
  ratioToProfile: number | null;
  /** the correction factor of the log's last decision (1 without the correction) */
  lastFactor: number | null;
}

/** A committed miss-log sample's columns (bench.json missLogSample) as CpuJobColumns. */
export function sampleCpuJobColumns(s: { rows: number; columns: Record<string, number[]> }): CpuJobColumns {
  const c = s.columns;
  return { rows: s.rows, step: c.step, tokens: c.tokens, onCpu: c.onCpu, cpuMeasuredMs: c.cpuMeasuredMs, ...(c.cpuFactor ? { cpuFactor: c.cpuFactor } : {}) };
}

/** Adds the log's measured CPU jobs (of forwards from `fromStep` on) to `byTokens` (token count -> measured ms); returns how many. */
export function collectCpuJobs(c: CpuJobColumns, byTokens: Map<number, number[]>, fromStep = 0): number {
  if (fromStep > 0 && !c.step) throw new Error('internal: collectCpuJobs from a step needs the step column');
  let jobs = 0;
  for (let i = 0; i < c.rows; i++) {
    if (c.onCpu[i] !== 1 || !(c.cpuMeasuredMs[i] >= 0) || (fromStep > 0 && c.step![i] < fromStep)) continue;
    const v = byTokens.get(c.tokens[i]) ?? [];
    v.push(c.cpuMeasuredMs[i]);
    byTokens.set(c.tokens[i], v);
    jobs++;
  }
  return jobs;
}

// The mean, not the median: the timing model adds job durations up (a worker's jobs run back to back), and
// the logged times are skewed to the right (1 token: median 0.50 ms, mean 0.53, p90 0.68).
export function meanCurve(byTokens: Map<number, number[]>, minSamples: number): TokenCurve {
  return [...byTokens.entries()]
    .filter(([, v]) => v.length >= minSamples)
    .sort((a, b) => a[0] - b[0])
    .map(([n, v]) => [n, Number((v.reduce((a, b) => a + b, 0) / v.length).toFixed(4))]);
}

/**
 * profileCpuMs: the profile's per-expert CPU curve the rule was given (the spec's cpuExpertMs); fromStep: only
 * the jobs of forwards from this one on (the bench: its timed generations).
 */
export function summarizeCpuJobs(c: CpuJobColumns, profileCpuMs: TokenCurve, o: { fromStep?: number; minSamples?: number } = {}): CpuJobSummary {
  const minSamples = o.minSamples ?? 10;
  const byTokens = new Map<number, number[]>();
  const jobs = collectCpuJobs(c, byTokens, o.fromStep ?? 0);
  let measured = 0;
  let profile = 0;
  for (const [n, v] of byTokens) {
    measured += v.reduce((a, b) => a + b, 0);
    profile += v.length * interpolate(profileCpuMs, n);
  }
  return {
    jobs,
    jobMs: meanCurve(byTokens, minSamples),
    ratioToProfile: jobs > 0 && profile > 0 ? measured / profile : null,
    lastFactor: c.rows > 0 ? (c.cpuFactor ? c.cpuFactor[c.rows - 1] : 1) : null,
  };
}
