/** Hand-made routing for the predictor tests: tiny sequences built from nested arrays, and trace files. */
import { TraceWriter } from '../../traces/src/writer.js';
import type { RunMeta } from '../../traces/src/schema.js';
import type { RoutingCorpus, SequenceRouting } from '../../traces/src/sequences.js';
import { defaultFeatureSpec, featureWidth } from '../src/features.js';
import { initMlpWeights } from '../src/mlp.js';
import { writePredictorDir } from '../src/predictor-dir.js';

export interface TinyGeometry {
  L: number;
  k: number;
  E: number;
}

/** experts[t][l] = the k ids of token t at MoE layer l; weights likewise (default 1/(j+1) so the order is known). */
export function makeSequence(seq: number, g: TinyGeometry, experts: number[][][], weights?: number[][][], gateNext?: number[][][]): SequenceRouting {
  const T = experts.length;
  const s: SequenceRouting = {
    seq,
    length: T,
    positions: Int32Array.from({ length: T }, (_, t) => t),
    experts: new Uint16Array(T * g.L * g.k),
    weights: new Float32Array(T * g.L * g.k),
  };
  if (gateNext) {
    s.gateNext = new Uint16Array(T * g.L * g.k);
    s.gateNextValid = new Uint8Array(T * g.L);
  }
  for (let t = 0; t < T; t++) {
    for (let l = 0; l < g.L; l++) {
      for (let j = 0; j < g.k; j++) {
        const o = (t * g.L + l) * g.k + j;
        s.experts[o] = experts[t][l][j];
        s.weights[o] = weights ? weights[t][l][j] : 1 / (j + 1);
        if (gateNext && l + 1 < g.L) s.gateNext![o] = gateNext[t][l][j];
      }
      if (gateNext && l + 1 < g.L) s.gateNextValid![t * g.L + l] = 1;
    }
  }
  return s;
}

export function tinyMeta(g: TinyGeometry, dataset = 'tiny', firstMoe = 1): RunMeta {
  return {
    modelId: 'tiny-test-model',
    configHash: 'test',
    numLayers: g.L + firstMoe,
    moeLayers: Array.from({ length: g.L }, (_, l) => l + firstMoe),
    numExperts: g.E,
    topK: g.k,
    routingSource: 'imported',
    dataset,
    batchSize: 1,
    promptLength: null,
    device: null,
    engineVersion: 'test',
    gitRevision: null,
    createdAt: new Date(0).toISOString(),
  };
}

export function tinyCorpus(g: TinyGeometry, sequences: SequenceRouting[], dataset = 'tiny'): RoutingCorpus {
  const meta = tinyMeta(g, dataset);
  return { meta, moeLayers: meta.moeLayers.slice(), topK: g.k, numExperts: g.E, sequences };
}

/** Writes sequences as a trace v1 file (one token per step, rows by step then layer). */
export function writeTinyTrace(path: string, g: TinyGeometry, sequences: SequenceRouting[], dataset = 'tiny'): void {
  const meta = tinyMeta(g, dataset);
  const w = TraceWriter.create(path, meta);
  const rows = { step: [] as number[], phase: [] as number[], layer: [] as number[], seq: [] as number[], pos: [] as number[], experts: [] as number[], weights: [] as number[] };
  let step = 0;
  for (const s of sequences) {
    for (let t = 0; t < s.length; t++, step++) {
      for (let l = 0; l < g.L; l++) {
        rows.step.push(step);
        rows.phase.push(1);
        rows.layer.push(meta.moeLayers[l]);
        rows.seq.push(s.seq);
        rows.pos.push(t);
        const o = (t * g.L + l) * g.k;
        rows.experts.push(...s.experts.subarray(o, o + g.k));
        rows.weights.push(...s.weights.subarray(o, o + g.k));
      }
    }
  }
  w.append(rows);
  w.close();
}

/** Deterministic pseudo-random routing with structure a model can learn: layer l+1 mostly follows layer l. */
export function structuredSequences(g: TinyGeometry, count: number, length: number, seed: number, firstSeq = 0): SequenceRouting[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: SequenceRouting[] = [];
  for (let n = 0; n < count; n++) {
    const experts: number[][][] = [];
    for (let t = 0; t < length; t++) {
      const layers: number[][] = [];
      let first = Math.floor(rand() * g.E);
      for (let l = 0; l < g.L; l++) {
        // Expert e at layer l leads to (3e + l) mod E at layer l+1 (mostly), plus random others.
        const ids: number[] = [];
        const lead = rand() < 0.85 ? first : Math.floor(rand() * g.E);
        ids.push(lead);
        while (ids.length < g.k) {
          const e = Math.floor(rand() * g.E);
          if (!ids.includes(e)) ids.push(e);
        }
        layers.push(ids);
        first = (3 * lead + l) % g.E;
      }
      experts.push(layers);
    }
    out.push(makeSequence(firstSeq + n, g, experts));
  }
  return out;
}

/**
 * An exported predictor with seeded random weights (no training, no TensorFlow.js) for `geometry`, predicting
 * `lookahead` layers ahead from the default features (per-layer slot on): for tests of what consumes one.
 */
export function writeRandomPredictor(dir: string, geometry: { moeLayers: number[]; numExperts: number; topK: number }, lookahead: number, opts: { hidden?: number[]; seed?: number } = {}): void {
  const g = { numMoeLayers: geometry.moeLayers.length, numExperts: geometry.numExperts, topK: geometry.topK };
  const spec = defaultFeatureSpec(g, lookahead, { perLayer: true });
  const model = { inputWidth: featureWidth(spec), hidden: opts.hidden ?? [6], outputWidth: g.numExperts, activation: 'relu' as const };
  writePredictorDir(
    dir,
    {
      format: 'moe-offload-predictor',
      version: 1,
      geometry: { moeLayers: geometry.moeLayers.slice(), numExperts: g.numExperts, topK: g.topK, modelId: 'tiny', configHash: 'test' },
      lookahead,
      features: { ...spec, width: featureWidth(spec) },
      model,
      popularity: Array.from({ length: g.numMoeLayers }, () => Array(g.numExperts).fill(0)),
      training: {
        backend: 'test', createdAt: new Date(0).toISOString(), seed: opts.seed ?? 5, options: {},
        split: { kind: 'sequence', train: [], val: [], test: [] },
        samples: { train: 0, val: 0, test: 0 }, history: [], bestEpoch: 0, stoppedEarly: false, routing: [],
      },
    },
    initMlpWeights(model, opts.seed ?? 5),
  );
}
