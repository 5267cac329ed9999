/** Small hand-made traces and ESFT-format folders for tests. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunMeta } from '../src/schema.js';

export function tinyMeta(over: Partial<RunMeta> = {}): RunMeta {
  return {
    modelId: 'test/tiny',
    configHash: 'sha256:test',
    numLayers: 3,
    moeLayers: [1, 2],
    numExperts: 8,
    topK: 2,
    routingSource: 'model',
    dataset: 'unit-test',
    batchSize: 1,
    promptLength: 4,
    device: null,
    engineVersion: 'test',
    gitRevision: null,
    createdAt: '2026-11-22T00:00:00.000Z',
    ...over,
  };
}

/**
 * Writes an ESFT-format folder: `seqs[s][l][t]` is the top-k of token t of sequence s at MoE layer l+1.
 * Weights are made up but valid (0.5, 0.25, ...).
 */
export function writeEsftDir(dir: string, seqs: number[][][][]): void {
  mkdirSync(dir, { recursive: true });
  const layers = seqs[0].length;
  for (let l = 0; l < layers; l++) {
    const lines = seqs.map((s) => {
      const ids = s[l].flat();
      const weights = s[l].flatMap((tok) => tok.map((_, j) => (0.5 / (j + 1)).toFixed(4)));
      return [...ids, '', ...weights].join('\t');
    });
    writeFileSync(join(dir, `expert_weights_${l + 1}.txt`), lines.join('\n') + '\n');
  }
}
