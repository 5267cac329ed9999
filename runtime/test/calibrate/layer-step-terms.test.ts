/**
 * layer-step-terms.ts: calibrate's eager overhead taken to the eager run's routing and the layer glue, worked
 * by hand on round numbers; the expected distinct experts against a direct count over random routings; and
 * layer-terms-from-raw refusing a profile whose launch table is not the raw file's.
 */
import { describe, expect, it } from 'vitest';
import type { LaunchTable } from '../../../sim/src/cost/calibration.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { expectedDistinctExperts, layerStepTerms, layerStepTermsSource, setLayerStepTerms } from '../../src/calibrate/layer-step-terms.js';
import { withLayerTermsFromRaw } from '../../src/calibrate/layer-terms-from-raw.js';
import type { RawLayerStep } from '../../src/calibrate/measure-layer-step.js';
import type { RawDocument } from '../../src/calibrate/raw.js';
import { makePlan } from '../../src/calibrate/plan.js';

const step = (batch: number, sync: boolean, ms: number): RawLayerStep => ({ batch, context: 512, sync, samples: [ms], medianMs: ms });

/** experts 2 and 4 (rows), tokens per expert 1 and 2: ms = 0.01 x experts x tokens + 0.02 (linear in both, so interpolation is exact). */
const launch: LaunchTable = {
  maxRows: 32,
  ms: [2, 4].map((e) => [e, [1, 2].map((t) => [t, 0.01 * e * t + 0.02] as [number, number])] as [number, Array<[number, number]>]),
};

describe('layer step terms, worked by hand (E = 4, k = 2)', () => {
  const shape = { experts: 4, topK: 2 };
  const gpu = { moeLayerOtherMs: [[1, 0.05], [2, 0.06]] as Array<[number, number]> };

  it('batch 1: the graph and the eager run read 2 experts, nothing to take off; glue = graph - other - launch', () => {
    const t = layerStepTerms([step(1, true, 0.2), step(1, false, 0.15)], launch, gpu, shape);
    // launch at 2 experts x 1 token: 0.04; other 0.05; glue 0.15 - 0.05 - 0.04 = 0.06; eager 0.2 - 0.15 = 0.05
    expect(t.points[0].routingLaunchMs).toBeCloseTo(0, 12);
    expect(t.eagerLayerOverheadMs).toEqual([[1, 0.05]]);
    expect(t.layerGlueMs).toEqual([[1, 0.06]]);
  });

  it('batch 2: the eager run reads 3 distinct experts (4(1 - (1/2)^2)) where the graph reads 2 with 2 tokens each', () => {
    expect(expectedDistinctExperts(2, 4, 2)).toBeCloseTo(3, 12);
    const t = layerStepTerms([step(2, true, 0.3), step(2, false, 0.2)], launch, gpu, shape);
    // graph launch: 2 experts x 2 tokens = 0.06; eager's: 3 experts x 4/3 tokens = 0.01 x 4 + 0.02 = 0.06 (the
    // table is linear in pairs): nothing taken off; glue 0.2 - 0.06 - 0.06 = 0.08.
    expect(t.points[0].routingLaunchMs).toBeCloseTo(0, 12);
    expect(t.layerGlueMs).toEqual([[2, 0.08]]);
    // a table that charges per expert read: 0.03 per expert + 0.005 per pair
    const perExpert: LaunchTable = { maxRows: 32, ms: [2, 4].map((e) => [e, [1, 2].map((tk) => [tk, 0.03 * e + 0.005 * e * tk] as [number, number])] as [number, Array<[number, number]>]) };
    const u = layerStepTerms([step(2, true, 0.3), step(2, false, 0.2)], perExpert, gpu, shape);
    // eager's launch 0.03 x 3 + 0.005 x 4 = 0.11, graph's 0.03 x 2 + 0.02 = 0.08: 0.03 off the 0.1 difference
    expect(u.points[0].routingLaunchMs).toBeCloseTo(0.03, 12);
    expect(u.eagerLayerOverheadMs).toEqual([[2, 0.07]]);
    expect(u.layerGlueMs).toEqual([[2, 0.06]]); // 0.2 - 0.06 - 0.08
    expect(layerStepTermsSource('X', u).eager).toContain('batch 2: 0.3000 - 0.2000 - 0.0300 ms');
  });

  it('steps whose eager run read the graph\'s experts (sameExperts): nothing taken off, whatever the table charges', () => {
    const perExpert: LaunchTable = { maxRows: 32, ms: [2, 4].map((e) => [e, [1, 2].map((tk) => [tk, 0.03 * e + 0.005 * e * tk] as [number, number])] as [number, Array<[number, number]>]) };
    const same = (sync: boolean, ms: number): RawLayerStep => ({ ...step(2, sync, ms), sameExperts: true });
    const u = layerStepTerms([same(true, 0.3), same(false, 0.2)], perExpert, gpu, shape);
    expect(u.points[0].routingLaunchMs).toBe(0);
    expect(u.eagerLayerOverheadMs).toEqual([[2, 0.1]]);
    expect(u.layerGlueMs).toEqual([[2, 0.06]]); // the glue is the graph's: unchanged
    expect(layerStepTermsSource('X', u, true).eager).toContain('both launching experts 0..k-1 (batch 2: 0.3000 - 0.2000 ms)');
  });

  it('setLayerStepTerms writes the join curve beside the others, with or without a launch table', () => {
    const steps: RawLayerStep[] = [
      { ...step(1, true, 0.2), sameExperts: true },
      { ...step(1, false, 0.15), sameExperts: true },
      { ...step(1, true, 0.26), join: true, sameExperts: true },
    ];
    for (const table of [launch, undefined]) {
      const out: { eagerLayerOverheadMs?: Array<[number, number]>; cpuJoinLayerOverheadMs?: Array<[number, number]> } = {};
      const sources: Record<string, string> = {};
      setLayerStepTerms(out, sources, 'gpu', 'measured', makePlan(true), steps, table, gpu, shape);
      expect(out.eagerLayerOverheadMs).toEqual([[1, 0.05]]);
      expect(out.cpuJoinLayerOverheadMs).toEqual([[1, 0.06]]);
      expect(sources['gpu.cpuJoinLayerOverheadMs']).toContain('batch 1: 0.2600 - 0.2000 ms');
    }
  });

  it('negative results are noise: 0; the context-table is used when the profile has one; a missing mode throws', () => {
    const t = layerStepTerms([step(1, true, 0.1), step(1, false, 0.12)], launch, { ...gpu, byContext: { moeLayerOtherMs: [[512, [[1, 0.1]]]] } }, shape);
    expect(t.points[0].moeOtherMs).toBeCloseTo(0.1, 12);
    expect(t.eagerLayerOverheadMs).toEqual([[1, 0]]);
    expect(t.layerGlueMs).toEqual([[1, 0]]); // 0.12 - 0.1 - 0.04 < 0
    expect(() => layerStepTerms([step(1, true, 0.1)], launch, gpu, shape)).toThrow('lacks its graph measurement');
  });
});

describe('expected distinct experts', () => {
  it('matches a count over random top-k routings (E 64, k 6)', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const rows of [1, 4, 16]) {
      let sum = 0;
      const trials = 2000;
      for (let n = 0; n < trials; n++) {
        const seen = new Set<number>();
        for (let r = 0; r < rows; r++) {
          const row = new Set<number>();
          while (row.size < 6) row.add(Math.floor(rnd() * 64));
          for (const e of row) seen.add(e);
        }
        sum += seen.size;
      }
      expect(expectedDistinctExperts(rows, 64, 6)).toBeCloseTo(sum / trials, 0);
    }
    expect(expectedDistinctExperts(1, 64, 6)).toBeCloseTo(6, 12);
  });
});

describe('layer-terms-from-raw', () => {
  const raw = {
    gpu: { device: { name: 'GPU' }, layerSteps: [step(1, true, 0.2), step(1, false, 0.15)], launches: [{ experts: 2, tokens: 1, samples: [0.04], medianMs: 0.04 }] },
    derived: { plan: makePlan(true) },
  } as unknown as RawDocument;
  const routing = { experts: 4, topK: 2 };

  it('replaces the eager curve and adds the glue, with sources', () => {
    const m = defaultCalibration();
    const p = withLayerTermsFromRaw({ ...m, gpu: { ...m.gpu, launch, moeLayerOtherMs: [[1, 0.05]], byContext: undefined } }, raw, routing, 'r.json');
    expect(p.gpu.eagerLayerOverheadMs).toEqual([[1, 0.05]]);
    expect(p.gpu.layerGlueMs).toEqual([[1, 0.06]]);
    expect(p.sources!['gpu.layerGlueMs']).toContain('derived again from r.json (GPU)');
  });

  it('refuses a profile whose launch table is not the raw file\'s, and one without a table', () => {
    const m = defaultCalibration();
    const other: LaunchTable = { maxRows: 32, ms: [[2, [[1, 0.09]]]] };
    expect(() => withLayerTermsFromRaw({ ...m, gpu: { ...m.gpu, launch: other } }, raw, routing, 'r.json')).toThrow('is not the one --raw r.json measured');
    expect(() => withLayerTermsFromRaw({ ...m, gpu: { ...m.gpu, launch: undefined } }, raw, routing, 'r.json')).toThrow('has no gpu.launch table');
  });
});
