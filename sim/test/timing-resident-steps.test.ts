/**
 * Resident steps (timing/engine.ts residentSteps; the runtime's native/src/cuda_backend/cuda_resident_step.cpp):
 * a decode step without a prefetcher that starts with every routed expert of every layer cached skips the
 * per-layer host work (host.layerMs, gpu.eagerLayerOverheadMs) between the layers and pays the controller's
 * per-layer work after the head instead. Worked by hand on round numbers.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type CostModel, type SimConfig } from '../src/index.js';
import { RESIDENT_STEP_MAX_ROWS } from '../src/timing/engine.js';
import { handCorpus, roundCosts } from './helpers.js';

/** other 1, dense 2, head 1, expert 0.5, copy 1; eager overhead 0.25 and host work 0.1 per layer, 0.2 per step. */
function costs(): CostModel {
  const m = roundCosts('round-resident', 1);
  m.gpu.eagerLayerOverheadMs = [[1, 0.25]];
  m.host = { layerMs: [[1, 0.1]], stepMs: [[1, 0.2]] };
  return m;
}

// Two experts, two MoE layers, top-1, one sequence of four tokens.
const corpus = handCorpus([[[[0], [0]], [[1], [1]], [[0], [1]], [[1], [0]]]], 2);
const run = (c: Partial<SimConfig>) =>
  runSimulation(corpus, { policy: 'static', cacheSize: 2, batch: 1, prefetch: 'none', miss: 'fetch', calibration: costs(), keepSteps: true, ...c });

describe('resident steps, worked by hand', () => {
  it('every expert pinned: each step skips the per-layer host work and pays the layers\' controller work after the head', () => {
    // per step: dense 2 + 2 x (other 1 + expert 0.5) + head 1 + step 0.2 + 2 x 0.1 = 6.4
    const r = run({});
    expect(r.residentSteps).toBe(4);
    expect(Array.from(r.perStep!.resident)).toEqual([1, 1, 1, 1]);
    for (const ms of r.perStep!.ms) expect(ms).toBeCloseTo(6.4, 9);
    // no layer goes through the host, so none is split into head and tail (the runtime counts none either)
    expect(Array.from(r.perStep!.layerTails)).toEqual([0, 0, 0, 0]);
  });

  it('off: the per-layer path (dense 2 + 2 x (1 + 0.1 + 0.25 + 0.5) + head 1 + step 0.2 = 6.9 per step)', () => {
    const r = run({ residentSteps: false });
    expect(r.residentSteps).toBe(0);
    for (const ms of r.perStep!.ms) expect(ms).toBeCloseTo(6.9, 9);
  });

  it('a cold cache: resident once every (layer, expert) has been requested in an earlier step', () => {
    // lru with room for both experts: step 0 requests 0 at both layers, step 1 requests 1 at both; from step 2
    // on every expert is cached (its copy issued) when the step starts.
    const r = run({ policy: 'lru' });
    expect(Array.from(r.perStep!.resident)).toEqual([0, 0, 1, 1]);
    // steps 2 and 3 hit everything: 6.4 each, as above
    expect(r.perStep!.ms[2]).toBeCloseTo(6.4, 9);
    expect(r.perStep!.ms[3]).toBeCloseTo(6.4, 9);
  });

  it('never with a cache smaller than the experts, a prefetcher, or before decodeFrom', () => {
    expect(run({ policy: 'lru', cacheSize: 1 }).residentSteps).toBe(0);
    expect(run({ prefetch: 'oracle' }).residentSteps).toBe(0);
    expect(Array.from(run({ decodeFrom: 2 }).perStep!.resident)).toEqual([0, 0, 1, 1]);
  });

  it(`never in a step of more than ${RESIDENT_STEP_MAX_ROWS} tokens (the runtime's graph limit)`, () => {
    const lanes = RESIDENT_STEP_MAX_ROWS + 1;
    const wide = handCorpus(Array.from({ length: lanes }, () => [[[0], [1]], [[1], [0]]]), 2);
    const at = (batch: number) => runSimulation(wide, { policy: 'static', cacheSize: 2, batch, prefetch: 'none', miss: 'fetch', calibration: costs() }).residentSteps;
    expect(at(lanes)).toBe(0);
    expect(at(RESIDENT_STEP_MAX_ROWS)).toBeGreaterThan(0);
  });

  it('without host curves in the profile a resident step takes what the per-layer path takes', () => {
    const plain = roundCosts('round-plain', 1);
    const a = runSimulation(corpus, { policy: 'static', cacheSize: 2, batch: 1, prefetch: 'none', miss: 'fetch', calibration: plain });
    const b = runSimulation(corpus, { policy: 'static', cacheSize: 2, batch: 1, prefetch: 'none', miss: 'fetch', calibration: plain, residentSteps: false });
    expect(a.residentSteps).toBe(4);
    expect(a.totalMs).toBeCloseTo(b.totalMs, 9);
  });
});
