/**
 * gpu.eagerLayerOverheadMs: what the offloaded runtime's eager, once-per-layer synchronised launching costs
 * beyond the GPU work, charged once per MoE layer on the GPU's critical path after the layer's non-expert
 * part (with host.layerMs when both are present). Worked by hand on timing.test.ts's round numbers.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type CostModel } from '../src/index.js';
import { calibrationProblems } from '../src/cost/calibration.js';
import { Costs } from '../src/cost/cost-model.js';
import { costModelForDtype } from '../src/cost/expert-dtype.js';
import { handCorpus } from './helpers.js';

/** copy 1 ms, expert 0.5, other 1, dense 2, head 1 (timing.test.ts), optionally the overhead and launches. */
function costs(overhead?: Array<[number, number]>, launches = false): CostModel {
  const m: CostModel = {
    schema: 'moe-offload.calibration', version: 1, name: 'round-eager', label: 'test: round numbers', measured: false,
    device: 'test', model: 'test', expertBytes: 1_000_000,
    transfer: { h2dGBps: 1, perCopyMs: 0, copyEngines: 1 },
    gpu: { expertMs: [[1, 0.5]], moeLayerOtherMs: [[1, 1]], denseLayerMs: [[1, 2]], headMs: [[1, 1]] },
    cpu: { workers: 1, expertMs: [[1, 3]], activationCopyMs: 0 },
  };
  if (overhead) m.gpu.eagerLayerOverheadMs = overhead;
  if (launches) m.gpu.launch = { maxRows: 4, ms: [[1, [[1, 0.5], [2, 0.7]]], [2, [[1, 0.6], [2, 1.0]]]] };
  return m;
}

const twoLayers = handCorpus([[[[1], [2]]]]); // one token, MoE layers 1 and 2, top-1
const twoSteps = handCorpus([[[[1, 2]], [[1, 3]]]]); // timing.test.ts's corpus: two tokens, one MoE layer, top-2
const base = { policy: 'lru' as const, cacheSize: 2, batch: 1 };

describe('eager layer overhead, worked by hand', () => {
  it('is charged once per MoE layer, before the routing reaches the cache and the copies', () => {
    // dense 0-2; layer 1: other 2-3, overhead 3-3.25, copy 3.25-4.25, expert 4.25-4.75;
    // layer 2: other 4.75-5.75, overhead -6, copy 6-7, expert 7-7.5; head 7.5-8.5 (8 without it).
    const run = (m: CostModel) => runSimulation(twoLayers, { ...base, prefetch: 'none', miss: 'fetch', calibration: m });
    expect(run(costs()).totalMs).toBeCloseTo(8, 9);
    const r = run(costs([[1, 0.25]]));
    expect(r.totalMs).toBeCloseTo(8.5, 9);
    expect(r.breakdown.gpuExpertMs).toBeCloseTo(1, 9);
  });

  it('adds to host.layerMs (one wait per layer)', () => {
    // as above with 0.1 + 0.25 per layer: 8 + 2 x 0.35
    const m = costs([[1, 0.25]]);
    m.host = { layerMs: [[1, 0.1]], stepMs: [[1, 0]] };
    expect(runSimulation(twoLayers, { ...base, prefetch: 'none', miss: 'fetch', calibration: m }).totalMs).toBeCloseTo(8.7, 9);
  });

  it('with the launch model and oracle prefetch (timing-launch.test.ts: 9.2 ms)', () => {
    // step 0: prefetches 0-1, 1-2; dense 0-2, other 2-3, overhead 3-3.25; resident launch (2 x 1) 3.25-3.85;
    //   head 3.85-4.85. step 1 at 4.85: prefetch of 3 4.85-5.85; dense -6.85, other -7.85, overhead -8.1;
    //   resident launch 8.1-8.7; head 8.7-9.7.
    const r = runSimulation(twoSteps, { ...base, prefetch: 'oracle', miss: 'fetch', calibration: costs([[1, 0.25]], true) });
    expect([r.readyHits, r.lateHits]).toEqual([4, 0]);
    expect(r.totalMs).toBeCloseTo(9.7, 9);
  });

  it('a late copy hides none of it here: the routing, and so the loaded launch, comes later', () => {
    // launch model, fetch: timing-launch.test.ts's 12.1 ms plus 0.25 per step (copies issued 0.25 later).
    expect(runSimulation(twoSteps, { ...base, prefetch: 'none', miss: 'fetch', calibration: costs([[1, 0.25]], true) }).totalMs).toBeCloseTo(12.6, 9);
  });

  it('interpolates by rows, holds the last point past the curve, 0 without the field', () => {
    const c = new Costs(costs([[1, 0.02], [16, 0.05]]));
    expect(c.eagerLayerOverhead(1)).toBeCloseTo(0.02, 12);
    expect(c.eagerLayerOverhead(4)).toBeCloseTo(0.026, 12); // 0.02 + 3/15 x 0.03
    expect(c.eagerLayerOverhead(64)).toBeCloseTo(0.05, 12); // held, not extrapolated to 0.146
    expect(new Costs(costs()).eagerLayerOverhead(4)).toBe(0);
  });
});

describe('gpu.eagerLayerOverheadMs in profiles', () => {
  it('is optional and checked like the other curves, with the field named', () => {
    expect(calibrationProblems(costs())).toEqual([]);
    expect(calibrationProblems(costs([[1, 0.03]]))).toEqual([]);
    expect(calibrationProblems(costs([]))).toEqual(['gpu.eagerLayerOverheadMs must be a non-empty list of [tokens, ms] pairs']);
    expect(calibrationProblems(costs([[1, -0.1]]))).toEqual(['gpu.eagerLayerOverheadMs[0] must be [tokens >= 1, ms >= 0]']);
    expect(calibrationProblems(costs([[16, 0.1], [1, 0.1]]))).toEqual(['gpu.eagerLayerOverheadMs: tokens must be strictly ascending']);
  });

  it('applies to every expert dtype (launching and synchronising do not depend on the experts\' format)', () => {
    const m = costs([[1, 0.03]]);
    m.byExpertDtype = { int8: { expertBytes: 500_000, gpu: { expertMs: [[1, 0.3]] }, cpu: { expertMs: [[1, 2]] } } };
    expect(costModelForDtype(m, 'int8').model.gpu.eagerLayerOverheadMs).toEqual([[1, 0.03]]);
    m.expertShape = { hidden: 2048, dff: 1408 };
    expect(costModelForDtype(m, 'int4').model.gpu.eagerLayerOverheadMs).toEqual([[1, 0.03]]);
  });
});
