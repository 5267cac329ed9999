import { describe, expect, it } from 'vitest';
import { countPopularity, nextGateRanker, popularityOrder, popularityRanker, previousTokenRanker } from '../src/baselines.js';
import { buildSamples } from '../src/dataset.js';
import { evaluate } from '../src/evaluate.js';
import { MetricsAccumulator, topIndices } from '../src/metrics.js';
import { defaultFeatureSpec } from '../src/features.js';
import { makeSequence } from './fixtures.js';

const g = { L: 2, k: 2, E: 6 };
const geometry = { numMoeLayers: 2, numExperts: 6, topK: 2 };
// Layer 1 uses expert 5 most (3 times), then 4 (twice), then 0, 1, 3 (once each), never 2.
const train = makeSequence(
  0,
  g,
  [
    [[0, 1], [5, 4]],
    [[0, 2], [5, 0]],
    [[0, 3], [4, 5]],
    [[1, 2], [1, 3]],
  ],
  [
    [[0.5, 0.4], [0.6, 0.3]],
    [[0.5, 0.4], [0.2, 0.7]], // weight order differs from router order here
    [[0.5, 0.4], [0.6, 0.3]],
    [[0.5, 0.4], [0.6, 0.3]],
  ],
  [
    [[5, 4], [0, 0]],
    [[1, 2], [0, 0]],
    [[3, 5], [0, 0]],
    [[1, 3], [0, 0]],
  ],
);

describe('baselines', () => {
  const counts = countPopularity([train], geometry);
  const order = popularityOrder(counts, geometry);

  it('counts popularity per layer and orders ties by id', () => {
    expect(Array.from(counts.subarray(6, 12))).toEqual([1, 1, 0, 1, 2, 3]);
    expect(Array.from(order.subarray(6, 12))).toEqual([5, 4, 0, 1, 3, 2]);
    expect(Array.from(order.subarray(0, 6))).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('previous token: its experts at the target layer by weight, then popularity; popularity alone for the first token', () => {
    const rank = previousTokenRanker(geometry, 1, order);
    const out = new Uint16Array(4);
    rank(train, 2, 0, out, 4);
    // token 1 at layer 1: 5 (0.2), 0 (0.7) -> by weight 0, 5; then popularity 4, 1 (0 and 5 skipped)
    expect(Array.from(out)).toEqual([0, 5, 4, 1]);
    rank(train, 0, 0, out, 4);
    expect(Array.from(out)).toEqual([5, 4, 0, 1]);
  });

  it('popularity ranks the target layer, whatever the token', () => {
    const out = new Uint16Array(3);
    popularityRanker(geometry, 1, order)(train, 3, 0, out, 3);
    expect(Array.from(out)).toEqual([5, 4, 0]);
  });

  it('next gate: gate_next of the source layer, then popularity', () => {
    const out = new Uint16Array(3);
    nextGateRanker(geometry, order)(train, 2, 0, out, 3);
    expect(Array.from(out)).toEqual([3, 5, 4]);
  });

  it('evaluate() scores the baselines with recall and precision at each budget', () => {
    const spec = defaultFeatureSpec(geometry, 1);
    const set = buildSamples([train], 2, 1);
    const r = evaluate(set, spec, null, { budgets: [2, 4], moeLayers: [1, 2], popularity: counts });
    // Previous token at budget 2: t0 -> popularity {5,4} vs {5,4}: 2 hits; t1 -> {5,4} vs {5,0}: 1;
    // t2 -> {0,5} vs {4,5}: 1; t3 -> {4,5} vs {1,3}: 0. Recall = 4 / 8.
    expect(r.baselines.previousToken!.overall.at[2].recall).toBeCloseTo(4 / 8);
    expect(r.baselines.previousToken!.overall.at[2].precision).toBeCloseTo(4 / 8);
    // Next gate: {5,4}/{5,4}: 2; {1,2}/{5,0}: 0; {3,5}/{4,5}: 1; {1,3}/{1,3}: 2 -> 5/8.
    expect(r.baselines.nextGate!.overall.at[2].recall).toBeCloseTo(5 / 8);
    // Popularity {5,4}: 2 + 1 + 2 + 0 = 5 hits at budget 2; {5,4,0,1}: 2 + 2 + 2 + 1 = 7 at budget 4.
    expect(r.baselines.popularity!.overall.at[2].recall).toBeCloseTo(5 / 8);
    expect(r.baselines.popularity!.overall.at[4].recall).toBeCloseTo(7 / 8);
    expect(r.baselines.popularity!.overall.at[4].precision).toBeCloseTo(7 / 16);
    expect(r.baselines.popularity!.perLayer.map((l) => l.layer)).toEqual([2]);
    expect(r.predictor).toBeUndefined();
  });

  it('evaluate() has no next-gate baseline without gate_next or for k > 1', () => {
    const plain = makeSequence(1, g, [[[0, 1], [2, 3]]]);
    const r = evaluate(buildSamples([plain], 2, 1), defaultFeatureSpec(geometry, 1), null, { budgets: [2], moeLayers: [1, 2], popularity: counts });
    expect(r.baselines.nextGate).toBeUndefined();
  });
});

describe('metrics', () => {
  it('topIndices picks the largest values, ties to the lower index', () => {
    const out = new Uint16Array(3);
    topIndices([0.1, 0.9, 0.5, 0.9, -1, 0.7], 0, 6, 3, out);
    expect(Array.from(out)).toEqual([1, 3, 5]);
    topIndices([9, 0, 0.2, 0.1], 1, 3, 2, out);
    expect(Array.from(out.subarray(0, 2))).toEqual([1, 2]);
  });

  it('accumulates recall and precision per layer', () => {
    const acc = new MetricsAccumulator(3, [1, 2]);
    const truth = Uint8Array.from([1, 0, 1, 0]);
    acc.add(1, [2, 3], truth, 2);
    acc.add(1, [1, 0], truth, 2);
    acc.add(2, [0, 2], truth, 2);
    const m = acc.result([10, 11, 12]);
    expect(m.perLayer.map((l) => l.layer)).toEqual([11, 12]);
    expect(m.perLayer[0].at[1]).toEqual({ recall: 0.25, precision: 0.5 });
    expect(m.perLayer[0].at[2]).toEqual({ recall: 0.5, precision: 0.5 });
    expect(m.perLayer[1].at[2]).toEqual({ recall: 1, precision: 1 });
    expect(m.overall.at[2].recall).toBeCloseTo(2 / 3);
  });
});
