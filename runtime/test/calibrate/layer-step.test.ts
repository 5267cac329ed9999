/**
 * calibrate's layer-step measurement (measure-layer-step.ts): which batches are timed, the modes per batch
 * (with the CPU join for bf16), the profile curves as eager-with-sync minus graph and eager-with-join minus
 * eager (worked by hand), and an addon without layerStepMs. The native measurement itself runs only on a
 * CUDA device (the device command in sim/README.md).
 */
import { describe, expect, it } from 'vitest';
import { calibrationProblems, defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { makePlan } from '../../src/calibrate/plan.js';
import { cpuJoinOverheadCurve, cpuJoinOverheadSource, eagerOverheadCurve, eagerOverheadSource, layerStepBatches, layerStepPoints, measureLayerSteps, type RawLayerStep } from '../../src/calibrate/measure-layer-step.js';
import type { LayerStepMode, NativeCudaCalibrator } from '../../src/calibrate/native.js';

const noProgress = { tick: () => {}, done: () => {} } as never;

/** A calibrator whose eager synchronised step takes 0.1 + 0.01 x batch ms, its graph replay 0.07 + 0.01 x batch, its eager step with a join 0.14 + 0.01 x batch. */
function fake(calls: Array<[number, number, LayerStepMode]>): NativeCudaCalibrator {
  const base = { eager: 0.1, graph: 0.07, 'eager-join': 0.14 };
  return {
    layerStepMs: (batch: number, context: number, mode: LayerStepMode, repeats: number) => {
      calls.push([batch, context, mode]);
      return Float64Array.from({ length: repeats }, (_, i) => base[mode] + 0.01 * batch + (i === 0 ? 1 : 0)); // one outlier
    },
  } as unknown as NativeCudaCalibrator;
}

describe('layer-step measurement', () => {
  it('times batches up to the decode kernel rows, eager with sync and as a graph, at the reference context', () => {
    const plan = makePlan(false);
    expect(layerStepBatches(plan)).toEqual([1, 16]);
    const calls: Array<[number, number, LayerStepMode]> = [];
    const raw = measureLayerSteps(fake(calls), plan, noProgress)!;
    expect(calls).toEqual([[1, 512, 'eager'], [1, 512, 'graph'], [16, 512, 'eager'], [16, 512, 'graph']]);
    expect(raw.every((r) => r.sameExperts && !r.join)).toBe(true);
    expect(cpuJoinOverheadCurve(raw)).toBeNull();
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

  it('with the join: a third mode per batch, and its curve is eager-with-join minus eager', () => {
    const plan = makePlan(false);
    const calls: Array<[number, number, LayerStepMode]> = [];
    let ticks = 0;
    const raw = measureLayerSteps(fake(calls), plan, { tick: () => ticks++, done: () => {} } as never, true)!;
    expect(calls.map((c) => c[2])).toEqual(['eager', 'graph', 'eager-join', 'eager', 'graph', 'eager-join']);
    expect(ticks).toBe(layerStepPoints(plan, true));
    expect(raw.filter((r) => r.join).map((r) => r.sync)).toEqual([true, true]);
    // the join records are not the eager ones: 0.11 - 0.08 still
    expect(eagerOverheadCurve(raw)[0][1]).toBeCloseTo(0.03, 12);
    // 0.15 - 0.11 at batch 1, 0.30 - 0.26 at 16
    const join = cpuJoinOverheadCurve(raw)!;
    expect(join.map(([b]) => b)).toEqual([1, 16]);
    expect(join[0][1]).toBeCloseTo(0.04, 12);
    expect(join[1][1]).toBeCloseTo(0.04, 12);
    const m = defaultCalibration();
    expect(calibrationProblems({ ...m, gpu: { ...m.gpu, cpuJoinLayerOverheadMs: join } })).toEqual([]);
    expect(cpuJoinOverheadSource('measured by calibrate on X', raw)).toContain('batch 16: 0.3000 - 0.2600 ms');
  });

  it('a join record without its eager one is an error; a negative join difference is 0', () => {
    const r = (batch: number, sync: boolean, ms: number, join = false): RawLayerStep => ({ batch, context: 512, sync, ...(join ? { join } : {}), samples: [ms], medianMs: ms });
    expect(() => cpuJoinOverheadCurve([r(1, true, 0.2, true), r(1, false, 0.1)])).toThrow('calibrate: layer step at batch 1 has a join measurement but no eager one');
    expect(cpuJoinOverheadCurve([r(1, true, 0.2), r(1, true, 0.19, true)])).toEqual([[1, 0]]);
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
