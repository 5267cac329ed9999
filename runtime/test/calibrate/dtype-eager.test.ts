/**
 * dtype-eager-from-calibration (issue 13): the quantized formats' eager-launch overhead carried into a
 * profile as a ratio to bf16 measured in one calibrate call; refusals name what is missing.
 */
import { describe, expect, it } from 'vitest';
import { calibrationProblems, defaultCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import { withDtypeEager } from '../../src/calibrate/dtype-eager-from-calibration.js';

const entry = (eager?: Array<[number, number]>) => ({ expertBytes: 4_866_048, group: 64, gpu: { expertMs: [[1, 0.02]] as Array<[number, number]>, ...(eager ? { eagerLayerOverheadMs: eager } : {}) }, cpu: { expertMs: [[1, 0.3]] as Array<[number, number]> } });
const base = (): CostModel => ({ ...structuredClone(defaultCalibration()), gpu: { ...defaultCalibration().gpu, eagerLayerOverheadMs: [[1, 0.05], [16, 0.16]] }, byExpertDtype: { int4: entry() } });
const cal = (): CostModel => ({ ...structuredClone(defaultCalibration()), gpu: { ...defaultCalibration().gpu, eagerLayerOverheadMs: [[1, 0.04], [16, 0.15]] }, byExpertDtype: { int4: entry([[1, 0.036], [16, 0.12]]) } });

describe('withDtypeEager', () => {
  it("sets int4's curve to the base's bf16 curve times int4 / bf16 of the calibration, at the calibration's batches", () => {
    const p = withDtypeEager(base(), cal(), 'c.json');
    expect(p.byExpertDtype!.int4!.gpu.eagerLayerOverheadMs).toEqual([[1, 0.045], [16, 0.128]]);
    expect(calibrationProblems(p)).toEqual([]);
    expect(p.sources?.['byExpertDtype.int4.gpu.eagerLayerOverheadMs']).toMatch(/c\.json: batch 1 0\.036 \/ 0\.04 ms/);
    // the simulator takes it for int4; bf16 keeps its own
    expect(new Costs(costModelForDtype(p, 'int4', 64).model).eagerLayerOverhead(16)).toBeCloseTo(0.128, 9);
    expect(new Costs(costModelForDtype(p, 'bf16').model).eagerLayerOverhead(16)).toBeCloseTo(0.16, 9);
    // the base is not changed
    expect(base().byExpertDtype!.int4!.gpu.eagerLayerOverheadMs).toBeUndefined();
  });
  it('refuses a base or calibration without a bf16 curve, nothing to apply, another int4 group', () => {
    const noEager = base();
    delete noEager.gpu.eagerLayerOverheadMs;
    expect(() => withDtypeEager(noEager, cal())).toThrow(/--base .*no gpu.eagerLayerOverheadMs/);
    const c = cal();
    delete c.gpu.eagerLayerOverheadMs;
    expect(() => withDtypeEager(base(), c, 'c.json')).toThrow(/--calibration c.json: has no bf16/);
    const none = cal();
    delete none.byExpertDtype!.int4!.gpu.eagerLayerOverheadMs;
    expect(() => withDtypeEager(base(), none, 'c.json')).toThrow(/no int8\/int4 entry/);
    const g = cal();
    g.byExpertDtype!.int4!.group = 128;
    expect(() => withDtypeEager(base(), g, 'c.json')).toThrow(/group 128/);
  });
});
