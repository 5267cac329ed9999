/**
 * calibrate's layer-step measurement (measure-layer-step.ts): which batches are timed, both modes per batch,
 * the profile curve as eager-with-sync minus graph (worked by hand), and an addon without layerStepMs.
 * The native measurement itself runs only on a CUDA device (the device command in sim/README.md).
 */
import { describe, expect, it } from 'vitest';
import { calibrationProblems, defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { makePlan } from '../../src/calibrate/plan.js';
import { eagerOverheadCurve, eagerOverheadSource, layerStepBatches, measureLayerSteps, type RawLayerStep } from '../../src/calibrate/measure-layer-step.js';
import type { NativeCudaCalibrator } from '../../src/calibrate/native.js';

const noProgress = { tick: () => {}, done: () => {} } as never;

/** A calibrator whose eager synchronised step takes 0.1 + 0.01 x batch ms and whose graph replay 0.07 + 0.01 x batch. */
function fake(calls: Array<[number, number, boolean]>): NativeCudaCalibrator {
  return {
    layerStepMs: (batch: number, context: number, sync: boolean, repeats: number) => {
      calls.push([batch, context, sync]);
      return Float64Array.from({ length: repeats }, (_, i) => (sync ? 0.1 : 0.07) + 0.01 * batch + (i === 0 ? 1 : 0)); // one outlier
    },
  } as unknown as NativeCudaCalibrator;
}

describe('layer-step measurement', () => {
  it('times batches up to the decode kernel rows, eager with sync and as a graph, at the reference context', () => {
    const plan = makePlan(false);
    expect(layerStepBatches(plan)).toEqual([1, 16]);
    const calls: Array<[number, number, boolean]> = [];
    const raw = measureLayerSteps(fake(calls), plan, noProgress)!;
    expect(calls).toEqual([[1, 512, true], [1, 512, false], [16, 512, true], [16, 512, false]]);
    expect(raw[0].samples.length).toBe(plan.repeats);
    expect(raw[0].medianMs).toBeCloseTo(0.11, 12); // the outlier is not the median
    // 0.11 - 0.08 = 0.03 at batch 1; 0.26 - 0.23 = 0.03 at 16
    const curve = eagerOverheadCurve(raw);
    expect(curve.map(([b]) => b)).toEqual([1, 16]);
    expect(curve[0][1]).toBeCloseTo(0.03, 12);
    expect(curve[1][1]).toBeCloseTo(0.03, 12);
    const m = defaultCalibration();
    expect(calibrationProblems({ ...m, gpu: { ...m.gpu, eagerLayerOverheadMs: curve } })).toEqual([]);
    expect(eagerOverheadSource('measured by calibrate on X', raw, plan)).toContain('batch 1: 0.1100 - 0.0800 ms');
  });

  it('a negative difference is noise: 0; a batch without both modes is an error', () => {
    const r = (batch: number, sync: boolean, ms: number): RawLayerStep => ({ batch, context: 512, sync, samples: [ms], medianMs: ms });
    expect(eagerOverheadCurve([r(1, true, 0.05), r(1, false, 0.06), r(4, false, 0.1), r(4, true, 0.125)])).toEqual([[1, 0], [4, 0.025]]);
    expect(() => eagerOverheadCurve([r(1, true, 0.05)])).toThrow('calibrate: layer step at batch 1 lacks its graph measurement');
  });

  it('an addon without layerStepMs gives null (the profile then has no curve)', () => {
    let ticks = 0;
    expect(measureLayerSteps({} as NativeCudaCalibrator, makePlan(true), { tick: () => ticks++, done: () => {} } as never)).toBeNull();
    expect(ticks).toBe(4);
  });
});
