/**
 * The host's launches after a layer's CPU join (gpu.cpuJoinLayerOverheadMs): the host goes on only once the
 * CPU jobs are done, so the scatter, the combine and the next layer's launches reach the GPU that long after
 * the last job ends. They run beside the outputs' upload, and GPU work still queued then hides them.
 * Worked by hand on round numbers (helpers.ts), with a GPU expert of 5 ms so that a hit can outlast a CPU job.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../src/index.js';
import { handCorpus, roundCosts } from './helpers.js';

const costs = (joinMs: number | null) => {
  const c = roundCosts('round-join', 1);
  c.gpu.expertMs = [[1, 5]];
  if (joinMs !== null) c.gpu.cpuJoinLayerOverheadMs = [[1, joinMs]];
  return c;
};
// one sequence, one MoE layer, top-2: step 1 routes to experts 1 and 2 (both missed: on the CPU, their
// slots filled in the background), step 2 to 1 (a hit: 5 ms on the GPU) and 3 (missed: on the CPU, 3 ms)
const corpus = handCorpus([[[[1, 2]], [[1, 3]]]]);
const run = (joinMs: number | null) =>
  runSimulation(corpus, { policy: 'lru', cacheSize: 2, batch: 1, prefetch: 'none', miss: 'cpu', cpuFill: true, cpuAdmit: true, calibration: costs(joinMs) });

describe("the host's launches after a CPU join", () => {
  it('without the curve: the upload alone follows the CPU jobs', () => {
    // step 1: dense 0-2, other 2-3, CPU jobs 3-6 and 6-9 (one worker), upload 9-9.5, head 9.5-10.5;
    // step 2: dense 10.5-12.5, other 12.5-13.5, the hit 13.5-18.5 beside the CPU job 13.5-16.5 and its
    // upload 16.5-17: the scatter after the hit, head 18.5-19.5
    expect(run(null).totalMs).toBeCloseTo(19.5, 9);
    expect(run(0).totalMs).toBeCloseTo(19.5, 9);
  });

  it('delays the layer on a drained GPU, beside the upload', () => {
    // step 1: the launches 9-10 outlast the upload (9-9.5): head 10-11 (+0.5); step 2: the launches
    // 17-18 end before the hit does (18.5): hidden. 19.5 + 0.5
    expect(run(1).totalMs).toBeCloseTo(20, 9);
    // 3 ms: step 1's head 12-13 (+2.5); step 2's launches 16.5-19.5 outlast the hit by 1. 19.5 + 3.5
    expect(run(3).totalMs).toBeCloseTo(23, 9);
  });

  it('a shorter one than the upload changes nothing', () => {
    expect(run(0.25).totalMs).toBeCloseTo(19.5, 9);
  });
});
