/**
 * Host DRAM shared by the copy engine and the CPU workers (cost-model.ts cpuJobBesideCopies,
 * copySlowdownBesideCpu): a CPU job that starts while a copy runs lasts cpu.expertMsUnderCopy, a copy that
 * starts while a CPU job runs lasts transfer.copySlowdownUnderCpu times longer; each fixed when the job
 * starts. Worked by hand on one token, one MoE layer, misses computed on the CPU with background fills.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type CostModel } from '../src/index.js';
import { calibrationProblems } from '../src/cost/calibration.js';
import { handCorpus, roundCosts } from './helpers.js';

/** roundCosts, with the host-DRAM figures when given: CPU expert `underCopy` beside copies, copies `copySlowdown` x beside CPU jobs. */
function costs(copyMs: number, o: { underCopy?: number; copySlowdown?: number; jobMs?: number } = {}): CostModel {
  const m = roundCosts('round-dram', copyMs);
  if (o.copySlowdown) m.transfer.copySlowdownUnderCpu = [[1, o.copySlowdown]];
  if (o.underCopy) m.cpu.expertMsUnderCopy = [[1, o.underCopy]];
  if (o.jobMs) m.cpu.jobMs = [[1, o.jobMs]];
  return m;
}

const run = (corpus: ReturnType<typeof handCorpus>, model: CostModel) =>
  runSimulation(corpus, { policy: 'lru', cacheSize: 4, batch: 1, prefetch: 'none', miss: 'cpu', cpuFill: true, cpuAdmit: true, calibration: model });

describe('copies and CPU jobs slow each other through host DRAM', () => {
  const one = handCorpus([[[[1]]]]);
  const two = handCorpus([[[[1, 2]]]]);

  it('a fill that starts beside the CPU job takes the slowdown factor longer', () => {
    // dense 0-2, other 2-3; CPU job 3-6 (started before the fill is queued: alone); fill 3-5 at 1 ms x 2
    // (beside the CPU job); upload 6-6.5 (CPU idle by then), head 6.5-7.5
    expect(run(one, costs(1, { copySlowdown: 2 })).totalMs).toBeCloseTo(7.5, 9);
    // fill 4 ms x 2 = 3-11 outlasts the job: upload 11-11.5, head 11.5-12.5 (8.5 without the factor)
    expect(run(one, costs(4, { copySlowdown: 2 })).totalMs).toBeCloseTo(12.5, 9);
    expect(run(one, costs(4)).totalMs).toBeCloseTo(8.5, 9);
  });

  it('a CPU job that starts while a copy runs lasts expertMsUnderCopy', () => {
    // two misses on one worker: job 1 3-6 (copies idle at its start), fills 3-5 and 5-7 (2 ms each);
    // job 2 starts at 6 with fill 2 on the link: 4 ms, 6-10; upload 10-10.5; head 10.5-11.5
    expect(run(two, costs(2, { underCopy: 4 })).totalMs).toBeCloseTo(11.5, 9);
    // without the curve: job 2 6-9, upload 9-9.5, head 9.5-10.5
    expect(run(two, costs(2)).totalMs).toBeCloseTo(10.5, 9);
    // the runtime's logged job times (cpu.jobMs) already include the contention: no factor on top
    expect(run(two, costs(2, { underCopy: 4, jobMs: 3 })).totalMs).toBeCloseTo(10.5, 9);
  });

  it('the busy times count the durations as run', () => {
    // one step: busy per step = the whole run's
    const b = run(two, costs(2, { underCopy: 4 })).breakdown;
    expect(b.cpuBusyMs).toBeCloseTo(3 + 4, 9);
    expect(b.copyBusyMs).toBeCloseTo(2 + 2 + 0.5, 9);
  });
});

describe('transfer.copySlowdownUnderCpu in a profile', () => {
  it('is checked: positive factors by ascending tokens', () => {
    const bad = (v: unknown) => calibrationProblems({ ...costs(1), transfer: { h2dGBps: 1, perCopyMs: 0, copyEngines: 1, copySlowdownUnderCpu: v } });
    expect(bad([[1, 1.3], [4, 1.1]])).toEqual([]);
    expect(bad([[1, 0]])).toContain('transfer.copySlowdownUnderCpu: every factor must be positive');
    expect(bad([])).toContain('transfer.copySlowdownUnderCpu must be a non-empty list of [tokens, factor] pairs');
    expect(bad([[4, 1.2], [1, 1.3]])).toContain('transfer.copySlowdownUnderCpu: tokens must be strictly ascending');
  });
});

describe('the layer split (head / tail), as the runtime counts it', () => {
  it('one CPU miss: head = its CPU job (routing -> host goes on), tail = upload, head of the step, next layer', () => {
    // two MoE layers, each with one CPU miss (cache 4, cpu, no fill): dense 0-2, other 2-3, CPU 3-6, upload
    // 6-6.5; layer 2: other 6.5-7.5, CPU 7.5-10.5: head 3 (3 -> 6), tail 1.5 (6 -> 7.5)
    const two = handCorpus([[[[1], [2]]]]);
    const r = runSimulation(two, { policy: 'lru', cacheSize: 4, batch: 1, prefetch: 'none', miss: 'cpu', cpuAdmit: false, keepSteps: true, calibration: costs(1) });
    expect(r.perStep!.layerTails[0]).toBe(1);
    expect(r.perStep!.layerHeadMs[0]).toBeCloseTo(3, 9);
    expect(r.perStep!.layerTailMs[0]).toBeCloseTo(1.5, 9);
  });
});
