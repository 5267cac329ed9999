/**
 * The launch model (profile gpu.launch): a layer's GPU expert work timed as the runtime launches it, worked
 * by hand on the corpus of timing.test.ts; the profile checks and the per-dtype selection of the table.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type CostModel } from '../src/index.js';
import { calibrationProblems } from '../src/cost/calibration.js';
import { Costs } from '../src/cost/cost-model.js';
import { costModelForDtype } from '../src/cost/expert-dtype.js';
import { handCorpus } from './helpers.js';

/** timing.test.ts's round numbers (copy 1 ms, expert 0.5, other 1, dense 2, head 1) plus launches:
 * 1 expert x 1 token 0.5 ms, 2 experts x 1 token each 0.6 ms, 2 experts x 2 tokens each 1.0 ms. */
function launchCosts(): CostModel {
  return {
    schema: 'moe-offload.calibration', version: 1, name: 'round-launch', label: 'test: round numbers with launches', measured: false,
    device: 'test', model: 'test', expertBytes: 1_000_000,
    transfer: { h2dGBps: 1, perCopyMs: 0, copyEngines: 1 },
    gpu: {
      expertMs: [[1, 0.5]], moeLayerOtherMs: [[1, 1]], denseLayerMs: [[1, 2]], headMs: [[1, 1]],
      launch: { maxRows: 4, ms: [[1, [[1, 0.5], [2, 0.7]]], [2, [[1, 0.6], [2, 1.0]]]] },
    },
    cpu: { workers: 1, expertMs: [[1, 3]], activationCopyMs: 0 },
  };
}

const corpus = handCorpus([[[[1, 2]], [[1, 3]]]]);
const base = { policy: 'lru' as const, cacheSize: 2, batch: 1 };

describe('launch model, worked by hand (C = 2, lru)', () => {
  it('interpolates the table in tokens per expert, then in experts', () => {
    const c = new Costs(launchCosts());
    expect(c.launchModel(4)).toBe(true);
    expect(c.launchModel(5)).toBe(false);
    expect(c.gpuLaunch(2, 2)).toBeCloseTo(0.6, 12);
    expect(c.gpuLaunch(2, 3)).toBeCloseTo(0.8, 12); // 1.5 tokens each: 0.6 + 0.5 * 0.4
    expect(c.gpuLaunch(3, 3)).toBeCloseTo(0.7, 12); // 3 experts x 1: extrapolated 0.6 + 0.1
  });

  it('fetch: the loaded experts run in one launch after the last slot copy', () => {
    // step 0: dense 0-2, other 2-3; 1, 2 miss: copies 3-4, 4-5; loaded launch (2 x 1) 5-5.6; head 5.6-6.6.
    // step 1 at 6.6: dense -8.6, other -9.6; 1 hit: resident launch (1 x 1) 9.6-10.1; 3 misses, evicts 2:
    //   copy 9.6-10.6, loaded launch 10.6-11.1; head 11.1-12.1.
    const r = runSimulation(corpus, { ...base, prefetch: 'none', miss: 'fetch', calibration: launchCosts() });
    expect([r.hits, r.requests]).toEqual([1, 4]);
    expect(r.totalMs).toBeCloseTo(12.1, 9);
    expect(r.breakdown.gpuExpertMs).toBeCloseTo((0.6 + 0.5 + 0.5) / 2, 9);
  });

  it('oracle prefetch: both ready experts in one resident launch', () => {
    // step 0: prefetches 0-1, 1-2; dense 0-2, other 2-3; resident launch (2 x 1) 3-3.6; head 3.6-4.6.
    // step 1 at 4.6: prefetch 3 4.6-5.6; dense -6.6, other -7.6; resident launch 7.6-8.2; head 8.2-9.2.
    const r = runSimulation(corpus, { ...base, prefetch: 'oracle', miss: 'fetch', calibration: launchCosts() });
    expect([r.readyHits, r.lateHits]).toEqual([4, 0]);
    expect(r.totalMs).toBeCloseTo(9.2, 9);
  });

  it('a profile without gpu.launch keeps one job per expert (timing.test.ts: 12 ms)', () => {
    const m = launchCosts();
    delete m.gpu.launch;
    expect(runSimulation(corpus, { ...base, prefetch: 'none', miss: 'fetch', calibration: m }).totalMs).toBeCloseTo(12, 9);
  });
});

describe('gpu.launch in profiles', () => {
  it('is checked like the other curves, with the field named', () => {
    const bad = (launch: unknown) => calibrationProblems({ ...launchCosts(), gpu: { ...launchCosts().gpu, launch } });
    expect(calibrationProblems(launchCosts())).toEqual([]);
    expect(bad([])).toEqual(['gpu.launch must be an object {maxRows, ms}']);
    expect(bad({ maxRows: 0, ms: [[1, [[1, 1]]]] })[0]).toMatch(/^gpu\.launch\.maxRows must be a positive integer/);
    expect(bad({ maxRows: 4, ms: [[2, [[1, 1]]], [1, [[1, 1]]]] })).toEqual(['gpu.launch.ms: experts must be strictly ascending']);
    expect(bad({ maxRows: 4, ms: [[1, [[1, -1]]]] })).toEqual(['gpu.launch.ms[0][1][0] must be [tokens >= 1, ms >= 0]']);
  });

  it("a dtype takes its own entry's table, never bf16's (none: per-expert launches)", () => {
    const m = launchCosts();
    const int8 = { expertBytes: 500_000, gpu: { expertMs: [[1, 0.3]] as Array<[number, number]> }, cpu: { expertMs: [[1, 2]] as Array<[number, number]> } };
    m.byExpertDtype = { int8 };
    expect(costModelForDtype(m, 'int8').model.gpu.launch).toBeUndefined();
    const own = { maxRows: 4, ms: [[1, [[1, 0.2]]]] as Array<[number, Array<[number, number]>]> };
    m.byExpertDtype = { int8: { ...int8, gpu: { ...int8.gpu, launch: own } } };
    expect(calibrationProblems(m)).toEqual([]);
    expect(costModelForDtype(m, 'int8').model.gpu.launch).toEqual(own);
    // scaled (no entry): per-expert, the scaled curve
    expect(costModelForDtype({ ...m, byExpertDtype: undefined, expertShape: { hidden: 64, dff: 64 } }, 'int4').model.gpu.launch).toBeUndefined();
  });
});
