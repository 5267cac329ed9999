/**
 * gpu.layerGlueMs: a MoE layer whose routing goes to the host also runs the routing's copies, the upload and
 * the combine on the GPU (calibrate: runtime/src/calibrate/layer-step-terms.ts). Charged once per such layer on
 * the GPU's serial lane, booked as GPU non-expert work; a resident step has none of it. Worked by hand on the
 * round numbers of timing-resident-steps.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type CostModel, type SimConfig } from '../src/index.js';
import { calibrationProblems } from '../src/cost/calibration.js';
import { Costs } from '../src/cost/cost-model.js';
import { costModelForDtype } from '../src/cost/expert-dtype.js';
import { handCorpus, roundCosts } from './helpers.js';

/** other 1, dense 2, head 1, expert 0.5, copy 1; eager 0.25, host 0.1 per layer and 0.2 per step; glue. */
function costs(glue?: Array<[number, number]>): CostModel {
  const m = roundCosts('round-glue', 1);
  m.gpu.eagerLayerOverheadMs = [[1, 0.25]];
  m.host = { layerMs: [[1, 0.1]], stepMs: [[1, 0.2]] };
  if (glue) m.gpu.layerGlueMs = glue;
  return m;
}

const corpus = handCorpus([[[[0], [0]], [[1], [1]], [[0], [1]], [[1], [0]]]], 2);
const run = (m: CostModel, c: Partial<SimConfig> = {}) =>
  runSimulation(corpus, { policy: 'static', cacheSize: 2, batch: 1, prefetch: 'none', miss: 'fetch', calibration: m, keepSteps: true, residentSteps: false, ...c });

describe('layer glue, worked by hand', () => {
  it('per-layer path: dense 2 + 2 x (1 + 0.1 + 0.25 + 0.05 + 0.5) + head 1 + step 0.2 = 7.0 per step (6.9 without)', () => {
    for (const ms of run(costs()).perStep!.ms) expect(ms).toBeCloseTo(6.9, 9);
    const r = run(costs([[1, 0.05]]));
    for (const ms of r.perStep!.ms) expect(ms).toBeCloseTo(7.0, 9);
    // GPU work, not host work: non-expert time grows by 2 x 0.05 per step against the run without it
    expect(r.breakdown.gpuNonExpertMs - run(costs()).breakdown.gpuNonExpertMs).toBeCloseTo(0.1, 9);
  });

  it('a resident step has none of it (its routing stays on the GPU)', () => {
    const r = run(costs([[1, 0.05]]), { residentSteps: true });
    expect(r.residentSteps).toBe(4);
    for (const ms of r.perStep!.ms) expect(ms).toBeCloseTo(6.4, 9);
  });

  it('is held past its last point, 0 without the field; a quantized entry\'s own glue replaces bf16\'s', () => {
    expect(new Costs(costs([[1, 0.01], [16, 0.02]])).layerGlue(64)).toBeCloseTo(0.02, 12);
    expect(new Costs(costs()).layerGlue(4)).toBe(0);
    const m = costs([[1, 0.01]]);
    m.byExpertDtype = { int8: { expertBytes: 500_000, gpu: { expertMs: [[1, 0.3]], layerGlueMs: [[1, 0.03]] }, cpu: { expertMs: [[1, 2]] } } };
    expect(costModelForDtype(m, 'int8').model.gpu.layerGlueMs).toEqual([[1, 0.03]]);
    delete m.byExpertDtype.int8!.gpu.layerGlueMs;
    expect(costModelForDtype(m, 'int8').model.gpu.layerGlueMs).toEqual([[1, 0.01]]);
  });

  it('is checked like the other curves, with the field named', () => {
    expect(calibrationProblems(costs([[1, 0.02]]))).toEqual([]);
    expect(calibrationProblems(costs([[1, -0.02]]))).toEqual(['gpu.layerGlueMs[0] must be [tokens >= 1, ms >= 0]']);
  });
});
