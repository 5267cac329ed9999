/** The per-point summary of a miss log's CPU jobs (bench cpuJobs; sim-vs-bench --cpu-jobs point). */
import { describe, expect, it } from 'vitest';
import { summarizeCpuJobs } from '../../src/offload/cpu-job-summary.js';

describe('summarizeCpuJobs', () => {
  // forwards 3 (warm-up) and 4, 5 (timed); fetched rows and a CPU row whose job never ran (-1) are not jobs
  const log = {
    rows: 8,
    step: [3, 3, 4, 4, 4, 5, 5, 5],
    tokens: [1, 1, 1, 2, 1, 2, 1, 1],
    onCpu: [1, 1, 1, 1, 0, 1, 1, 1],
    cpuMeasuredMs: [9, 9, 0.6, 0.9, -1, 1.1, 0.4, -1],
    cpuFactor: [1, 1, 1, 1.2, 1.2, 1.3, 1.3, 1.4],
  };
  const profile: Array<[number, number]> = [[1, 0.5], [2, 0.8]];

  it('the timed forwards only: mean by token count, ratio to the profile, the last factor', () => {
    const s = summarizeCpuJobs(log, profile, { fromStep: 4, minSamples: 1 });
    expect(s.jobs).toBe(4);
    expect(s.jobMs).toEqual([[1, 0.5], [2, 1.0]]);
    // (0.6 + 0.4 + 0.9 + 1.1) / (0.5 + 0.5 + 0.8 + 0.8)
    expect(s.ratioToProfile).toBeCloseTo(3.0 / 2.6, 12);
    expect(s.lastFactor).toBeCloseTo(1.4, 6);
  });

  it('from the start it counts the warm-up too; minSamples leaves thin token counts out of the curve', () => {
    const s = summarizeCpuJobs(log, profile, { minSamples: 3 });
    expect(s.jobs).toBe(6);
    expect(s.jobMs).toEqual([[1, 4.75]]);
  });

  it('a log from before the correction (no factor column) reads factor 1; no jobs: no ratio', () => {
    const { cpuFactor: _, ...old } = log;
    expect(summarizeCpuJobs(old, profile).lastFactor).toBe(1);
    const none = summarizeCpuJobs({ ...log, onCpu: log.onCpu.map(() => 0) }, profile);
    expect(none.jobs).toBe(0);
    expect(none.ratioToProfile).toBeNull();
  });
});
