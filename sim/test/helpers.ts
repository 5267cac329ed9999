/** Hand-made corpora for tests: routing given as tokens[seq][t][layer] = top-k ids. */
import type { RunMeta } from '../../traces/src/schema.js';
import type { RoutingCorpus, SequenceRouting } from '../../traces/src/sequences.js';

export function handCorpus(tokens: number[][][][], numExperts = 8, extra: Partial<RunMeta> = {}): RoutingCorpus {
  const L = tokens[0][0].length;
  const k = tokens[0][0][0].length;
  const moeLayers = Array.from({ length: L }, (_, l) => l + 1);
  const meta: RunMeta = {
    modelId: 'hand-made',
    configHash: 'test',
    numLayers: L + 1,
    moeLayers,
    numExperts,
    topK: k,
    routingSource: 'imported',
    dataset: 'hand',
    batchSize: null,
    promptLength: null,
    device: null,
    engineVersion: 'test',
    gitRevision: null,
    createdAt: '2026-01-01T00:00:00Z',
    ...extra,
  };
  const sequences: SequenceRouting[] = tokens.map((seq, i) => {
    const T = seq.length;
    const experts = new Uint16Array(T * L * k);
    seq.forEach((tok, t) => tok.forEach((ids, l) => experts.set(ids, (t * L + l) * k)));
    return { seq: i, length: T, positions: Int32Array.from(seq.keys()), experts, weights: new Float32Array(T * L * k).fill(1 / k) };
  });
  return { meta, moeLayers, topK: k, numExperts, sequences };
}
