/**
 * The bench command's pieces that need no GPU: statistics, the grid and its seeded prompts, the
 * agreement metrics on hand-made logits (top-1, relative error, margin bins, hidden-state layout,
 * the noise-floor verdict) and the targets of issue 5.
 */
import { describe, expect, it } from 'vitest';
import { compareHidden, compareLogits, noiseFloor, type PathAgreement } from '../../src/bench/agreement.js';
import type { PointResult } from '../../src/bench/engine-bench.js';
import { makeGrid, makePrompts } from '../../src/bench/grid.js';
import { percentile, summarize } from '../../src/bench/stats.js';
import { evaluateTargets } from '../../src/bench/targets.js';

describe('stats', () => {
  it('summarizes with nearest-rank percentiles', () => {
    const s = summarize([5, 1, 4, 2, 3]);
    expect(s).toMatchObject({ n: 5, mean: 3, p50: 3, min: 1, max: 5, p99: 5 });
    expect(percentile([], 50)).toBeNaN();
    const many = Array.from({ length: 101 }, (_, i) => i);
    expect(percentile(many, 99)).toBe(99);
  });
});

describe('grid and prompts', () => {
  it('orders points by work and makes deterministic prompts that avoid bos/eos', () => {
    const g = makeGrid([16, 1], [512, 128], [64]);
    expect(g.map((p) => `${p.batch}x${p.prompt}`)).toEqual(['1x128', '1x512', '16x128', '16x512']);
    const a = makePrompts(g[2], 7, 50, 3, 4);
    const b = makePrompts(g[2], 7, 50, 3, 4);
    expect(a).toEqual(b);
    expect(a).toHaveLength(16);
    expect(a.every((p) => p.length === 128 && p[0] === 3 && p.slice(1).every((id) => id !== 3 && id !== 4 && id >= 0 && id < 50))).toBe(true);
    expect(a[0]).not.toEqual(a[1]);
    expect(makePrompts(g[2], 8, 50, 3, 4)).not.toEqual(a);
  });
});

describe('agreement metrics', () => {
  const V = 4;
  // Two sequences of lengths 2 and 1: three rows of four logits.
  const ref = new Float32Array([1, 5, 2, 0, /**/ 3, 2.98, 0, 0, /**/ 0, 0, 9, 1]);
  it('counts top-1 agreement, relative error and margins per position', () => {
    const ours = new Float32Array([1, 5, 2, 0, /**/ 2.9, 3, 0, 0, /**/ 0, 0, 9, 1]);
    const r = compareLogits('prefill', 'engine vs transformers-bf16', ours, ref, V, [2, 1], 0);
    expect(r.positions).toBe(3);
    expect(r.top1Agreement).toBeCloseTo(2 / 3);
    expect(r.disagreements).toEqual([{ sequence: 0, position: 1, ours: 1, reference: 0, referenceMargin: expect.closeTo(0.02, 5) }]);
    expect(r.logitsRelError.max).toBeCloseTo(Math.hypot(0.1, 0.02) / Math.hypot(3, 2.98), 5);
    expect(r.logitsRelError.min).toBe(0);
    // The disagreement sits in the smallest margin bin; the others agree in theirs.
    expect(r.byReferenceMargin[0]).toEqual({ margin: '[0, 0.05)', positions: 1, top1Agreement: 0 });
    expect(r.byReferenceMargin.at(-1)).toEqual({ margin: '>= 1', positions: 2, top1Agreement: 1 });
  });

  it('starts the decode comparison at the given position of every sequence', () => {
    const r = compareLogits('decode', 'engine vs transformers-bf16', ref, ref, V, [2, 1], 1);
    expect(r.positions).toBe(1);
    expect(r.top1Agreement).toBe(1);
  });

  it('refuses row counts that differ', () => {
    expect(() => compareLogits('prefill', 'engine vs transformers-bf16', new Float32Array(8), ref, V, [2, 1], 0)).toThrow(/2 engine logit rows vs 3 reference rows/);
  });

  it('reads the reference hidden states as [sequence][layer][position][hidden]', () => {
    const H = 2;
    const lengths = [2, 1];
    // Engine capture: per layer, rows of all sequences in order.
    const ours = [new Float32Array([1, 1, 2, 2, 3, 3]), new Float32Array([4, 4, 5, 5, 6, 6])];
    // Reference: seq 0 layer 0 (2 rows), seq 0 layer 1 (2 rows), seq 1 layer 0, seq 1 layer 1.
    const refH = new Float32Array([1, 1, 2, 2, /**/ 4, 4, 5, 5, /**/ 3, 3, /**/ 6, 6]);
    expect(compareHidden(ours, refH, lengths, H)).toEqual([0, 0]);
    const off = new Float32Array(refH);
    off[10] = 7; // seq 1, layer 1
    const e = compareHidden(ours, off, lengths, H);
    expect(e[0]).toBe(0);
    expect(e[1]).toBeGreaterThan(0);
  });

  it('judges the engine against the bf16 reference noise only when both fp32 rows exist', () => {
    const row = (compared: PathAgreement['compared'], err: number, top1: number, hidden: number[]): PathAgreement => ({
      path: 'prefill', compared, positions: 10, top1Agreement: top1, hiddenRelError: hidden, disagreements: [], byReferenceMargin: [], pass: null,
      logitsRelError: { n: 10, mean: err, p50: err, p99: err, min: err, max: err },
    });
    expect(noiseFloor([row('engine vs transformers-bf16', 0.04, 0.9, [0.04])])).toBeNull();
    const good = noiseFloor([row('engine vs transformers-fp32', 0.02, 0.95, [0.03]), row('transformers-bf16 vs transformers-fp32', 0.04, 0.9, [0.04])]);
    expect(good?.engineAtLeastAsAccurate).toBe(true);
    const worse = noiseFloor([row('engine vs transformers-fp32', 0.05, 0.95, [0.03]), row('transformers-bf16 vs transformers-fp32', 0.04, 0.9, [0.04])]);
    expect(worse?.engineAtLeastAsAccurate).toBe(false);
  });
});

describe('targets of issue 5', () => {
  const point = (batch: number, prompt: number, ms: number, prefill: number): PointResult => ({
    batch, prompt, newTokens: 64, repeats: 1, device: {},
    prefillMs: { n: 1, mean: prefill, p50: prefill, p99: prefill, min: prefill, max: prefill },
    msPerToken: { n: 1, mean: ms, p50: ms, p99: ms, min: ms, max: ms },
    decodeTokensPerSecond: (batch * 1000) / ms, endToEndTokensPerSecond: 0,
  });
  it('evaluates the points the grid has, with and without a baseline', () => {
    const pts = [point(1, 128, 4, 10), point(16, 128, 17, 50), point(16, 512, 20, 151)];
    const base = [{ batch: 1, prompt: 128, newTokens: 64, repeats: 1, prefillMs: { mean: 50, min: 50 }, msPerToken: { mean: 30, p50: 30, p99: 30 }, decodeTokensPerSecond: 33, peakGpuBytes: 0 }];
    const t = evaluateTargets(pts, base);
    expect(t.map((x) => [x.name, x.pass])).toEqual([
      ['batch 1, prompt 128: ms per output token', true],
      ['batch 1, prompt 128: speed-up over transformers', false], // 7.5x
      ['batch 16, prompt 128: output tokens/s', false], // 941
      ['prefill of 16 x 512 tokens', false], // 151 ms
    ]);
    expect(evaluateTargets([point(2, 64, 1, 1)], null)).toEqual([]);
  });
});
