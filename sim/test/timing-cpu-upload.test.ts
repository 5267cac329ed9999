/**
 * The upload of a layer's CPU expert outputs: one host-to-device copy (cuda_cpu_experts.cpp
 * join_cpu_experts) on the one copy engine, so it lands after the copies queued before it, among them the
 * background fill of the CPU expert itself; the layer goes on once it has landed. Worked by hand.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../src/index.js';
import { handCorpus, roundCosts } from './helpers.js';

const costs = (copyMs: number) => roundCosts('round-upload', copyMs);

const oneExpert = handCorpus([[[[1]]]]); // one token, one MoE layer, top-1
const run = (copyMs: number, cpuFill: boolean) =>
  runSimulation(oneExpert, { policy: 'lru', cacheSize: 2, batch: 1, prefetch: 'none', miss: 'cpu', cpuFill, cpuAdmit: true, calibration: costs(copyMs) });

describe('CPU expert outputs uploaded through the copy engine', () => {
  it('an idle copy engine: the upload right after the CPU job', () => {
    // dense 0-2, other 2-3; CPU job 3-6 (its fill 3-4 is done by then); upload 6-6.5; head 6.5-7.5
    expect(run(1, true).totalMs).toBeCloseTo(7.5, 9);
    expect(run(1, false).totalMs).toBeCloseTo(7.5, 9);
  });

  it('waits behind the background fill still on the link', () => {
    // fill 3-7 (4 ms copy) outlasts the CPU job (3-6): upload 7-7.5, head 7.5-8.5
    const r = run(4, true);
    expect(r.totalMs).toBeCloseTo(8.5, 9);
    // one expert copy (the fill); the upload is no expert copy, so the bytes moved are the fill's alone
    expect(r.bytesMoved).toBe(4_000_000);
    expect(r.cpuExperts).toBe(1);
    // without the fill the link is idle: 7.5 as above
    expect(run(4, false).totalMs).toBeCloseTo(7.5, 9);
  });
});
