import { describe, expect, it } from 'vitest';
import { calibrationProblems, defaultCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { Costs, interpolateContext } from '../../../sim/src/cost/cost-model.js';
import { loadCalibration } from '../../../sim/src/cost/calibration.js';
import { join } from 'node:path';
import { repoRoot } from '../../../core/test/helpers.js';

const table: Array<[number, Array<[number, number]>]> = [
  [128, [[1, 1], [16, 2]]],
  [512, [[1, 2], [16, 4]]],
];

describe('gpu.byContext: non-expert curves by context length', () => {
  it('interpolates in tokens, then linearly in the context, extrapolating past the ends', () => {
    // tokens 1, context 320: halfway from 128 to 512 -> 1 + (2 - 1) * 192 / 384 = 1.5
    expect(interpolateContext(table, 1, 320)).toBeCloseTo(1.5, 12);
    // tokens 8.5 (halfway 1..16): 1.5 at 128, 3 at 512; context 512 -> 3
    expect(interpolateContext(table, 8.5, 512)).toBeCloseTo(3, 12);
    // tokens 16, context 1024 (past the last): 2 + (4 - 2) * (1024 - 128) / 384 = 6.6667
    expect(interpolateContext(table, 16, 1024)).toBeCloseTo(2 + (2 * 896) / 384, 12);
    // one context only: the curve alone
    expect(interpolateContext([table[0]], 16, 4096)).toBe(2);
  });

  it('is used by Costs when a context is given and the profile has it; the main curves otherwise', () => {
    const base = defaultCalibration();
    const m: CostModel = { ...base, gpu: { ...base.gpu, byContext: { referenceContext: 512, moeLayerOtherMs: table, denseLayerMs: table } } };
    expect(calibrationProblems(m)).toEqual([]);
    const c = new Costs(m);
    expect(c.moeLayerOther(1, 320)).toBeCloseTo(1.5, 12);
    expect(c.denseLayer(1, 320)).toBeCloseTo(1.5, 12);
    expect(c.moeLayerOther(1)).toBe(base.gpu.moeLayerOtherMs[0][1]);
    const estimates = loadCalibration(join(repoRoot, 'sim', 'calibration', 'default-h200-pcie5.json'));
    expect(estimates.gpu.byContext).toBeUndefined();
    expect(new Costs(estimates).moeLayerOther(1, 4096)).toBe(estimates.gpu.moeLayerOtherMs[0][1]);
  });

  it('is validated: ascending integer contexts, each with a valid curve', () => {
    const base = defaultCalibration();
    const bad = (byContext: unknown) => calibrationProblems({ ...base, gpu: { ...base.gpu, byContext } });
    expect(bad([])).toContain('gpu.byContext must be an object');
    expect(bad({ referenceContext: 0, moeLayerOtherMs: table })).toContain('gpu.byContext.referenceContext must be a positive integer');
    expect(bad({ referenceContext: 512, moeLayerOtherMs: [table[1], table[0]] })).toContain('gpu.byContext.moeLayerOtherMs: contexts must be strictly ascending');
    expect(bad({ referenceContext: 512, moeLayerOtherMs: [[128, [[0, 1]]]] })).toContain('gpu.byContext.moeLayerOtherMs[0][1][0] must be [tokens >= 1, ms >= 0]');
    expect(bad({ referenceContext: 512 })).toContain('gpu.byContext.moeLayerOtherMs must be a non-empty list of [context, curve] pairs');
  });

  it('keeps the shipped profiles valid (the measured H200 default has byContext)', () => {
    expect(calibrationProblems(defaultCalibration())).toEqual([]);
    const measured = loadCalibration(join(repoRoot, 'sim', 'calibration', 'h200-measured.json'));
    expect(measured.measured).toBe(true);
    expect(measured.gpu.byContext?.referenceContext).toBe(512);
  });
});
