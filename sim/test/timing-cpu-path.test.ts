/**
 * host.cpuPathLayerMs / cpuPathStepMs: the host work a decode step on the miss rule's path (cpu, hybrid) adds,
 * per MoE layer on the routing's trip and per step after the head, also where no expert goes to the CPU; nothing
 * with misses fetched, nothing without the fields. Worked by hand on timing-eager-overhead.test.ts's numbers.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type CostModel } from '../src/index.js';
import { calibrationProblems } from '../src/cost/calibration.js';
import { handCorpus } from './helpers.js';

/** copy 1 ms, expert 0.5, other 1, dense 2, head 1; a CPU expert 3 ms, so the rule fetches every miss here. */
function costs(cpuPath?: { layer: number; step: number }): CostModel {
  return {
    schema: 'moe-offload.calibration', version: 1, name: 'round-cpu-path', label: 'test: round numbers', measured: false,
    device: 'test', model: 'test', expertBytes: 1_000_000,
    transfer: { h2dGBps: 1, perCopyMs: 0, copyEngines: 1 },
    gpu: { expertMs: [[1, 0.5]], moeLayerOtherMs: [[1, 1]], denseLayerMs: [[1, 2]], headMs: [[1, 1]] },
    cpu: { workers: 1, expertMs: [[1, 3]], activationCopyMs: 0 },
    host: { layerMs: [[1, 0]], stepMs: [[1, 0]], ...(cpuPath ? { cpuPathLayerMs: [[1, cpuPath.layer]], cpuPathStepMs: [[1, cpuPath.step]] } : {}) },
  };
}

const twoLayers = handCorpus([[[[1], [2]]]]); // one token, MoE layers 1 and 2, top-1
const run = (miss: 'fetch' | 'cpu' | 'hybrid', m: CostModel) => runSimulation(twoLayers, { policy: 'lru', cacheSize: 2, batch: 1, prefetch: 'none', miss, calibration: m });

describe('the miss rule path\'s host work, worked by hand', () => {
  it('hybrid fetching every miss: the fetch timeline plus the per-layer term twice and the per-step term once', () => {
    // dense 0-2; layer 1: other 2-3, host 3-3.1, copy 3.1-4.1, expert -4.6; layer 2: other -5.6, host -5.7,
    // copy -6.7, expert -7.2; head -8.2, step host -8.25 (8 without the fields).
    expect(run('hybrid', costs()).totalMs).toBeCloseTo(8, 9);
    const r = run('hybrid', costs({ layer: 0.1, step: 0.05 }));
    expect(r.cpuExperts).toBe(0);
    expect(r.totalMs).toBeCloseTo(8.25, 9);
  });
  it('is not charged with misses fetched, and is charged with --miss cpu too', () => {
    expect(run('fetch', costs({ layer: 0.1, step: 0.05 })).totalMs).toBeCloseTo(8, 9);
    expect(run('cpu', costs({ layer: 0.1, step: 0.05 })).totalMs).toBeCloseTo(run('cpu', costs()).totalMs + 0.25, 9);
  });
  it('is checked like the other host curves', () => {
    const bad = costs({ layer: 0.1, step: 0.05 });
    bad.host!.cpuPathLayerMs = [[1, -1]];
    expect(calibrationProblems(bad).join(' ')).toMatch(/host\.cpuPathLayerMs/);
  });
});
