/**
 * Per-dtype cost models (issue 13, sim/src/cost/expert-dtype.ts) and the profile's byExpertDtype section
 * (calibration.ts): a measured entry is used as measured; without one (or one at another int4 group) the
 * bf16 figures are scaled by the blob's bytes and the result says so; bad sections are refused by name.
 */
import { describe, expect, it } from 'vitest';
import { calibrationProblems, defaultCalibration, type CostModel } from '../src/cost/calibration.js';
import { Costs } from '../src/cost/cost-model.js';
import { costModelForDtype } from '../src/cost/expert-dtype.js';

const base = defaultCalibration();
const withEntries = (): CostModel => ({
  ...structuredClone(base),
  byExpertDtype: {
    int8: { expertBytes: 8_670_208, gpu: { expertMs: [[1, 0.012], [64, 0.05]] }, cpu: { expertMs: [[1, 0.3], [64, 2]], workers: 3 } },
    int4: { expertBytes: 4_866_048, group: 64, gpu: { expertMs: [[1, 0.009]] }, cpu: { expertMs: [[1, 0.2]] } },
  },
});

describe('cost model per expert dtype', () => {
  it("cpu.jobMs (bf16 jobs timed in the runtime) follows the dtype's expert time; none stays none", () => {
    const m = withEntries();
    m.cpu = { ...m.cpu, expertMs: [[1, 0.4], [64, 4]], jobMs: [[1, 0.6], [64, 5]] };
    // int8 measured at [[1, 0.3], [64, 2]]: x 0.75 at 1 token, x 0.5 at 64
    expect(costModelForDtype(m, 'int8').model.cpu.jobMs).toEqual([[1, 0.45], [64, 2.5]]);
    // scaled by bytes (no int4 entry at group 128): the jobs scale as the expert curve does
    const s = costModelForDtype(m, 'int4', 128).model.cpu;
    expect(s.jobMs![0][1]).toBeCloseTo((0.6 * s.expertMs[0][1]) / 0.4, 3);
    expect(costModelForDtype(withEntries(), 'int8').model.cpu.jobMs).toBeUndefined();
  });

  it("a dtype's own logged jobs (byExpertDtype.<d>.cpu.jobMs) replace bf16's scaled ones, and only that dtype's", () => {
    const m = withEntries();
    m.cpu = { ...m.cpu, expertMs: [[1, 0.4], [64, 4]], jobMs: [[1, 0.6], [64, 5]] };
    m.byExpertDtype!.int8!.cpu.jobMs = [[1, 0.37], [4, 0.5]];
    expect(costModelForDtype(m, 'int8').model.cpu.jobMs).toEqual([[1, 0.37], [4, 0.5]]);
    expect(new Costs(costModelForDtype(m, 'int8').model).cpuJob(1)).toBeCloseTo(0.37, 9);
    // int4 has none of its own: bf16's, scaled by int4's expert time over bf16's (0.2 / 0.4 at 1 token)
    expect(costModelForDtype(m, 'int4').model.cpu.jobMs![0]).toEqual([1, 0.3]);
    expect(costModelForDtype(m, 'bf16').model.cpu.jobMs).toEqual([[1, 0.6], [64, 5]]);
    // without bf16 jobs the dtype's own still count
    const n = withEntries();
    n.byExpertDtype!.int8!.cpu.jobMs = [[1, 0.37]];
    expect(costModelForDtype(n, 'int8').model.cpu.jobMs).toEqual([[1, 0.37]]);
    n.byExpertDtype!.int8!.cpu.jobMs = [[1, -1]];
    expect(calibrationProblems(n).join('; ')).toMatch(/byExpertDtype\.int8\.cpu\.jobMs/);
  });

  it("cpu.expertMsUnderCopy (calibrate's bf16 jobs beside copies) follows the dtype's expert time too", () => {
    const m = withEntries();
    m.cpu = { ...m.cpu, expertMs: [[1, 0.4], [64, 4]], expertMsUnderCopy: [[1, 0.52], [64, 6]] };
    // int8 measured at [[1, 0.3], [64, 2]]: x 0.75 at 1 token, x 0.5 at 64 (unscaled, an int8 job beside
    // copies would last as long as a bf16 one)
    expect(costModelForDtype(m, 'int8').model.cpu.expertMsUnderCopy).toEqual([[1, 0.39], [64, 3]]);
    expect(new Costs(costModelForDtype(m, 'int8').model).cpuJobBesideCopies(1)).toBeCloseTo(0.39, 9);
    expect(costModelForDtype(withEntries(), 'int8').model.cpu.expertMsUnderCopy).toBeUndefined();
  });

  it('bf16: the profile as it is', () => {
    const r = costModelForDtype(base, 'bf16');
    expect(r.model).toBe(base);
    expect(r.basis).toBe('bf16');
    expect(r.warning).toBeNull();
  });

  it('a measured entry replaces bytes, GPU and CPU expert curves (and workers); copies follow the bytes', () => {
    const m = withEntries();
    expect(calibrationProblems(m)).toEqual([]);
    const r = costModelForDtype(m, 'int8');
    expect(r.basis).toBe('measured');
    expect(r.warning).toBeNull();
    expect(r.model.expertBytes).toBe(8_670_208);
    expect(r.model.gpu.expertMs).toEqual([[1, 0.012], [64, 0.05]]);
    expect(r.model.cpu).toMatchObject({ workers: 3, expertMs: [[1, 0.3], [64, 2]], activationCopyMs: base.cpu.activationCopyMs });
    expect(r.model.gpu.moeLayerOtherMs).toEqual(base.gpu.moeLayerOtherMs);
    const c8 = new Costs(r.model);
    expect(c8.copyMs).toBeCloseTo(base.transfer.perCopyMs + 8_670_208 / (base.transfer.h2dGBps * 1e6), 12);
    expect(costModelForDtype(m, 'int4', 64).basis).toBe('measured');
  });

  it("the eager-launch overhead: the entry's own when it has one (measured with its kernel), else bf16's", () => {
    const m = withEntries();
    m.gpu = { ...m.gpu, eagerLayerOverheadMs: [[1, 0.05], [16, 0.17]] };
    m.byExpertDtype!.int4!.gpu.eagerLayerOverheadMs = [[1, 0.04], [16, 0.06]];
    expect(calibrationProblems(m)).toEqual([]);
    expect(new Costs(costModelForDtype(m, 'int4', 64).model).eagerLayerOverhead(16)).toBeCloseTo(0.06, 9);
    expect(new Costs(costModelForDtype(m, 'int8').model).eagerLayerOverhead(16)).toBeCloseTo(0.17, 9);
    m.byExpertDtype!.int4!.gpu.eagerLayerOverheadMs = [[1, -0.1]];
    expect(calibrationProblems(m).join(' ')).toMatch(/byExpertDtype\.int4\.gpu\.eagerLayerOverheadMs/);
  });

  it('no entry: bf16 curves and bytes scaled by the bytes ratio, measured false, a warning saying scaled, not measured', () => {
    const r = costModelForDtype(base, 'int4');
    const ratio = 4_866_048 / 17_301_504;
    expect(r.basis).toBe('scaled');
    expect(r.model.measured).toBe(false);
    expect(r.model.expertBytes).toBe(4_866_048);
    r.model.gpu.expertMs.forEach(([t, ms], i) => {
      expect(t).toBe(base.gpu.expertMs[i][0]);
      expect(Math.abs(ms - base.gpu.expertMs[i][1] * ratio)).toBeLessThanOrEqual(1e-3 * base.gpu.expertMs[i][1] * ratio + 1e-12);
    });
    r.model.cpu.expertMs.forEach(([, ms], i) => expect(ms).toBeCloseTo(base.cpu.expertMs[i][1] * ratio, 3));
    expect(r.warning).toMatch(/int4 figures are scaled, not measured/);
    expect(r.model.label).toMatch(/scaled by bytes \(x0\.281\), not measured/);
    // the profile itself is untouched
    expect(base.expertBytes).toBe(17_301_504);
  });

  it('an int4 entry measured at another group is not used for this group (scaled instead, saying why)', () => {
    const r = costModelForDtype(withEntries(), 'int4', 128);
    expect(r.basis).toBe('scaled');
    expect(r.warning).toMatch(/measured at group 64, not 128/);
  });

  it('a profile of another shape needs expertShape (or a measured entry) to be scaled', () => {
    const other = { ...structuredClone(base), expertBytes: 1_000_000 };
    expect(() => costModelForDtype(other, 'int8')).toThrow(/no byExpertDtype\.int8 entry and no expertShape/);
    const shaped = { ...other, expertShape: { hidden: 64, dff: 32 } };
    // int8 of 64 x 32: q 6144 + fp32 scales (32 + 32 + 64 rows) 512 = 6656 bytes, against bf16 12288
    expect(costModelForDtype(shaped, 'int8').model.expertBytes).toBe(Math.round(1_000_000 * (6656 / 12288)));
  });

  it('byExpertDtype and expertShape are validated like the other figures', () => {
    const bad = (f: (m: CostModel & Record<string, unknown>) => void) => {
      const m = withEntries() as CostModel & Record<string, unknown>;
      f(m);
      return calibrationProblems(m).join('; ');
    };
    expect(bad((m) => ((m.byExpertDtype as Record<string, unknown>).fp8 = m.byExpertDtype!.int8))).toMatch(/byExpertDtype\.fp8: unknown expert dtype/);
    expect(bad((m) => (m.byExpertDtype!.int8!.expertBytes = -5))).toMatch(/byExpertDtype\.int8\.expertBytes must be a positive integer/);
    expect(bad((m) => delete m.byExpertDtype!.int4!.group)).toMatch(/byExpertDtype\.int4\.group must be a positive integer/);
    expect(bad((m) => (m.byExpertDtype!.int8!.gpu.expertMs = [[4, 1], [2, 1]]))).toMatch(/byExpertDtype\.int8\.gpu\.expertMs: tokens must be strictly ascending/);
    expect(bad((m) => ((m.byExpertDtype!.int8! as unknown as Record<string, unknown>).cpu = 3))).toMatch(/byExpertDtype\.int8\.cpu must be an object/);
    expect(bad((m) => (m.byExpertDtype = [] as never))).toMatch(/byExpertDtype must be an object/);
    expect(bad((m) => (m.expertShape = { hidden: 0, dff: 3 }))).toMatch(/expertShape\.hidden must be a positive integer/);
  });
});
