/**
 * bench --check-quant's judgement (runtime/src/bench/quant-check.ts) on hand-made logits: the stated
 * thresholds (int8 stricter than int4), top-1 counted where the bf16 gap is >= 0.1 only, the per-expert
 * error distribution's nearest-rank quantiles, and a failed check failing the run (checks.ts).
 */
import { describe, expect, it } from 'vitest';
import { compareLogits } from '../../src/bench/agreement.js';
import { failedChecks } from '../../src/bench/checks.js';
import { distribution, judge, QUANT_THRESHOLDS, quantCheckTable, type QuantCheck, positionRows } from '../../src/bench/quant-check.js';
import type { BenchDocument } from '../../src/bench/run-bench.js';

const V = 4;
/** rows of 4 logits: the reference has a clear top-1 (gap 1) in rows 0-2 and a near tie (gap 0.01) in row 3 */
const ref = Float32Array.from([5, 4, 0, 0, 0, 6, 5, 0, 1, 0, 7, 6, 3, 3.01, 0, 0]);

describe('quantized-expert check', () => {
  it('states int8 >= 99% and int4 >= 95% top-1 where the gap >= 0.1, int4 with the looser logits bar', () => {
    expect(QUANT_THRESHOLDS.int8.confidentTop1Min).toBe(0.99);
    expect(QUANT_THRESHOLDS.int4.confidentTop1Min).toBe(0.95);
    expect(QUANT_THRESHOLDS.int4.logitsRelErrorP50Max).toBeGreaterThan(QUANT_THRESHOLDS.int8.logitsRelErrorP50Max);
  });

  it('a flipped near tie does not fail the check; a flipped confident position does', () => {
    const tieFlip = Float32Array.from(ref);
    tieFlip[12] = 3.02; // row 3: 3.02 vs 3.01, top-1 flips where the bf16 gap is 0.01
    const a = judge('int8', 64, compareLogits('prefill', 'quantized experts vs bf16 engine', tieFlip, ref, V, [4], 0));
    expect(a.top1Agreement).toBe(0.75);
    expect(a.confident).toBe(3);
    expect(a.confidentTop1Agreement).toBe(1);
    expect(a.pass).toBe(true);
    const confidentFlip = Float32Array.from(ref);
    confidentFlip[1] = 5.5; // row 0: 5 vs 5.5, the bf16 gap was 1
    const b = judge('int8', 64, compareLogits('prefill', 'quantized experts vs bf16 engine', confidentFlip, ref, V, [4], 0));
    expect(b.confidentTop1Agreement).toBeCloseTo(2 / 3, 12);
    expect(b.pass).toBe(false);
  });

  it('the logits error bar is per dtype: an error int4 accepts fails int8', () => {
    const noisy = ref.map((v) => v * 1.08);
    const c = compareLogits('decode', 'quantized experts vs bf16 engine', noisy, ref, V, [4], 0);
    expect(c.logitsRelError.p50).toBeCloseTo(0.08, 5);
    expect(judge('int8', 64, c).pass).toBe(false);
    expect(judge('int4', 64, c).pass).toBe(true);
  });

  it('per-expert errors: min/p50/p90/p99/max by nearest rank', () => {
    const e = Array.from({ length: 100 }, (_, i) => (100 - i) / 1000);
    const d = distribution(e, 2, 50, 16);
    expect(d).toEqual({ layers: 2, experts: 50, rows: 16, min: 0.001, p50: 0.05, p90: 0.09, p99: 0.099, max: 0.1 });
  });

  it('a failed check fails the run, and the table says which dtype and path', () => {
    const caseOf = (pass: boolean) => ({ ...judge('int4', 64, compareLogits('decode', 'quantized experts vs bf16 engine', ref, ref, V, [4], 0)), pass });
    const q: QuantCheck = { thresholds: QUANT_THRESHOLDS, sequences: 1, length: 4, newTokens: 3, cache: 16, cases: [caseOf(false)], expertErrors: [{ dtype: 'int4', group: 64, distribution: null, note: 'no quantFidelity' }], pass: false };
    expect(failedChecks({ quantCheck: q } as unknown as BenchDocument)).toEqual([expect.stringMatching(/quantized-expert check failed/)]);
    expect(quantCheckTable(q)).toMatch(/\| int4 g64 \| decode \| 4 \| 100\.00% of 3 \|.*\| NO \|/);
    expect(quantCheckTable(q)).toMatch(/no quantFidelity/);
  });
});

describe('positionRows', () => {
  const V = 2;
  // score() output of 2 sequences x 3 positions: row value = 10 * sequence + position
  const all = Float32Array.from([0, 1, 2, 10, 11, 12].flatMap((x) => [x, -x]));
  it('positions [from, to) of every sequence, in order, with their lengths', () => {
    const prefill = positionRows(all, 2, 3, V, 0, 2);
    expect(prefill.lengths).toEqual([2, 2]);
    expect(Array.from(prefill.rows)).toEqual([0, -0, 1, -1, 10, -10, 11, -11]);
    const decode = positionRows(all, 2, 3, V, 2, 3);
    expect(decode.lengths).toEqual([1, 1]);
    expect(Array.from(decode.rows)).toEqual([2, -2, 12, -12]);
  });
  it('refuses a shape that does not match or a range outside the sequences', () => {
    expect(() => positionRows(all, 2, 4, V, 0, 1)).toThrow(/are not 2 x 4 x 2/);
    expect(() => positionRows(all, 2, 3, V, 2, 4)).toThrow(/outside/);
  });
});
