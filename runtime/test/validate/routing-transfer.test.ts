/** Leave-one-task-out over the simulator's rankings: the pick on the other tasks, scored on the held-out one. */
import { describe, expect, it } from 'vitest';
import { leaveOneOut, rankAgreement, type TaskRanking } from '../../src/validate/routing-transfer.js';

const task = (name: string, ms: Record<string, number>, runnable = Object.keys(ms)): TaskRanking => ({ task: name, ms: new Map(Object.entries(ms)), runnable: new Set(runnable) });

describe('routing transfer', () => {
  it('picks by the geometric mean of the ratios to each other task\'s best, and scores the pick on the held-out task', () => {
    // a is best on A and B, c on C: held out C, the others pick a (regret 20% on C, rank 3).
    const A = task('A', { a: 10, b: 11, c: 12.5 });
    const B = task('B', { a: 20, b: 21, c: 30 });
    const C = task('C', { a: 6, b: 5.5, c: 5 });
    const [hA, hB, hC] = leaveOneOut([A, B, C]);
    expect(hC).toMatchObject({ task: 'C', pick: 'a', best: 'c', rank: 3, of: 3 });
    expect(hC.regret).toBeCloseTo(0.2, 12);
    // held out A: ratios on B a 1, b 1.05, c 1.5 and on C a 1.2, b 1.1, c 1: products 1.2, 1.155, 1.5, so b,
    // second on A (11 against 10).
    expect(hA).toMatchObject({ pick: 'b', best: 'a', rank: 2 });
    expect(hA.regret).toBeCloseTo(0.1, 12);
    // held out B: on A a 1, b 1.1, c 1.25 and on C a 1.2, b 1.1, c 1: products 1.2, 1.21, 1.25, so a, B's best.
    expect(hB).toMatchObject({ pick: 'a', best: 'a', regret: 0, rank: 1 });
  });

  it('only configurations the runtime can run, and ranked on every task, are candidates', () => {
    const A = task('A', { fast: 1, ok: 2, onlyA: 0.5 }, ['ok', 'onlyA']);
    const B = task('B', { fast: 1, ok: 2 }, ['ok']);
    const [hA, hB] = leaveOneOut([A, B]);
    expect(hA.pick).toBe('ok');
    expect(hB).toMatchObject({ pick: 'ok', best: 'ok', of: 1 });
    expect(() => leaveOneOut([A])).toThrow(/at least 2 traces/);
    expect(() => leaveOneOut([task('A', { x: 1 }), task('B', { y: 1 })])).toThrow(/no runnable configuration/);
  });

  it('Spearman over the configurations both tasks ranked', () => {
    expect(rankAgreement(task('A', { a: 1, b: 2, c: 3 }), task('B', { a: 10, b: 20, c: 30, d: 1 }))).toBeCloseTo(1, 12);
    expect(rankAgreement(task('A', { a: 1, b: 2, c: 3 }), task('B', { a: 3, b: 2, c: 1 }))).toBeCloseTo(-1, 12);
  });
});
