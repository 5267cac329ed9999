import { describe, expect, it } from 'vitest';
import { defaultFeatureSpec, featureSpecProblems, featureWidth, writeFeatures, writeLabel, type FeatureSpec } from '../src/features.js';
import { buildSamples } from '../src/dataset.js';
import { makeSequence } from './fixtures.js';

// 3 MoE layers, 5 experts, top-2; two tokens.
const g = { L: 3, k: 2, E: 5 };
const geometry = { numMoeLayers: 3, numExperts: 5, topK: 2 };
const seq = makeSequence(
  0,
  g,
  [
    [[0, 1], [2, 3], [4, 0]],
    [[1, 2], [3, 4], [0, 2]],
  ],
  [
    [[0.5, 0.25], [0.6, 0.1], [0.7, 0.2]],
    [[0.4, 0.3], [0.9, 0.05], [0.8, 0.15]],
  ],
);

describe('features', () => {
  it('builds the exact default vector: history, previous token at the target layer, layer one-hot', () => {
    const spec = defaultFeatureSpec(geometry, 1, { history: 2 });
    expect(featureWidth(spec)).toBe(5 + 5 + 5 + 3);
    const out = new Float32Array(featureWidth(spec)).fill(9); // stale values must be overwritten
    // token 1, source layer 1 -> target layer 2
    writeFeatures(seq, 1, 1, spec, out, 0);
    expect(Array.from(out)).toEqual([
      // token 1, layer 1: experts 3 (0.9) and 4 (0.05)
      0, 0, 0, 0.9, 0.05,
      // token 1, layer 0: experts 1 (0.4), 2 (0.3)
      0, 0.4, 0.3, 0, 0,
      // token 0, layer 2 (previous token at the target): 4 (0.7), 0 (0.2)
      0.2, 0, 0, 0, 0.7,
      // source layer one-hot
      0, 1, 0,
    ].map((x) => Math.fround(x)));
  });

  it('leaves zeros where the earlier layer or the previous token does not exist', () => {
    const spec = defaultFeatureSpec(geometry, 1, { history: 2 });
    const out = new Float32Array(featureWidth(spec));
    writeFeatures(seq, 0, 0, spec, out, 0);
    expect(Array.from(out)).toEqual([0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0].map((x) => Math.fround(x)));
  });

  it('puts the per-layer block into the slot of the source layer', () => {
    const spec: FeatureSpec = { ...geometry, lookahead: 1, blocks: [{ kind: 'routing', layerOffset: 0, tokenOffset: 0, perLayer: true }] };
    expect(featureWidth(spec)).toBe(15);
    const out = new Float32Array(15);
    writeFeatures(seq, 0, 1, spec, out, 0);
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 0, 0, 0, 0.6, 0.1, 0, 0, 0, 0, 0, 0].map((x) => Math.fround(x)));
  });

  it('writes multi-hot labels of the target layer', () => {
    const y = new Float32Array(7).fill(5);
    writeLabel(seq, 1, 2, geometry, y, 1);
    expect(Array.from(y)).toEqual([5, 1, 0, 1, 0, 0, 5]);
  });

  it('refuses specs that look at routing not yet computed', () => {
    const bad: FeatureSpec = { ...geometry, lookahead: 1, blocks: [{ kind: 'routing', layerOffset: 1, tokenOffset: 0 }] };
    expect(featureSpecProblems(bad).join()).toMatch(/not yet computed/);
    expect(featureSpecProblems({ ...bad, blocks: [{ kind: 'routing', layerOffset: 0, tokenOffset: 1 }] }).join()).toMatch(/not yet computed/);
    expect(featureSpecProblems({ ...bad, lookahead: 3, blocks: [{ kind: 'layer' }] }).join()).toMatch(/lookahead/);
    expect(featureSpecProblems({ ...bad, blocks: [{ kind: 'routing', layerOffset: 3, tokenOffset: -1 }] })).toEqual([]);
  });

  it('enumerates every (token, source layer) whose target layer exists', () => {
    const set = buildSamples([seq], 3, 2);
    expect(set.count).toBe(2);
    expect(Array.from(set.samples)).toEqual([0, 0, 0, 0, 1, 0]);
  });
});
