/** Hand-made corpora for tests: routing given as tokens[seq][t][layer] = top-k ids. */
import type { RunMeta } from '../../traces/src/schema.js';
import type { RoutingCorpus, SequenceRouting } from '../../traces/src/sequences.js';
import type { CostModel } from '../src/cost/calibration.js';

/**
 * A profile of round numbers for hand-worked timing tests: one expert copy takes `copyMs` (1 GB/s, no
 * per-copy overhead, one copy engine), a CPU expert 3 (one worker), the activations' round trip 0.5, a GPU
 * expert 0.5, a MoE layer's other work 1, the dense layer 2, the head 1.
 */
export function roundCosts(name: string, copyMs: number): CostModel {
  return {
    schema: 'moe-offload.calibration', version: 1, name, label: 'test: round numbers', measured: false,
    device: 'test', model: 'test', expertBytes: copyMs * 1_000_000,
    transfer: { h2dGBps: 1, perCopyMs: 0, copyEngines: 1 },
    gpu: { expertMs: [[1, 0.5]], moeLayerOtherMs: [[1, 1]], denseLayerMs: [[1, 2]], headMs: [[1, 1]] },
    cpu: { workers: 1, expertMs: [[1, 3]], activationCopyMs: 0.5 },
  };
}

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
