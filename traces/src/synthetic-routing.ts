/**
 * A documented synthetic routing generator: trace v1 files with DeepSeek-V2-Lite's geometry (26 MoE layers,
 * 64 experts, top-6) whose routing has the three properties that matter to expert offloading, each with a
 * parameter. It is NOT model routing and is not derived from any real trace; the simulator ships one as its
 * default input until the runtime records real ones (traces/samples/README.md).
 *
 * For token t of a sequence at MoE layer l, the k experts are drawn one slot at a time, without repeats:
 *   1. stickiness: each expert of the same sequence's previous token at layer l is kept with probability
 *      `stickiness` (temporal locality, what LRU exploits);
 *   2. cross-layer correlation: each expert e of the same token at layer l-1 proposes affinity_l(e) (a fixed
 *      random permutation per layer) with probability `crossLayer` (what cross-layer predictors exploit);
 *   3. the remaining slots are drawn from the layer's Zipf popularity p_l(e) ∝ 1 / (rank_l(e) + 1)^zipf,
 *      rank_l a random permutation per layer (skew, what LFU and static placement exploit).
 * Weights are decreasing softmax-like values. gate_next (layer l's guess of layer l+1) is the true top-k of
 * layer l+1 with each id replaced, with probability 1 - `gateNextAccuracy`, by a Zipf draw; null on the last layer.
 * Everything comes from one seeded PRNG (splitmix32), so a seed and the parameters give the same file.
 */
import { pathToFileURL } from 'node:url';
import { PHASE_DECODE, type RunMeta } from './schema.js';
import { TraceWriter } from './writer.js';

export interface SyntheticRoutingParams {
  seed: number;
  sequences: number;
  tokensPerSequence: number;
  /** Model layers including the dense first layer (DeepSeek-V2-Lite: 27, MoE layers 1..26). */
  numLayers: number;
  numExperts: number;
  topK: number;
  zipf: number;
  stickiness: number;
  crossLayer: number;
  gateNextAccuracy: number;
  /** Fixed so that regenerating gives the same file. */
  createdAt: string;
}

export const DEFAULT_SYNTHETIC_PARAMS: SyntheticRoutingParams = {
  seed: 20260101,
  sequences: 24,
  tokensPerSequence: 72,
  numLayers: 27,
  numExperts: 64,
  topK: 6,
  zipf: 0.9,
  stickiness: 0.45,
  crossLayer: 0.25,
  gateNextAccuracy: 0.8,
  createdAt: '2026-01-01T00:00:00.000Z',
};

/** splitmix32: small, fast, and easy to reproduce in any language. */
export function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z = (z ^ (z >>> 15)) >>> 0;
    return z / 4294967296;
  };
}

function permutation(n: number, rand: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

export interface SyntheticRouting {
  meta: RunMeta;
  /** rows in trace order (step, layer): experts/weights/gateNext of row r at r*k. */
  rows: number;
  step: Int32Array;
  layer: Uint16Array;
  seq: Int32Array;
  pos: Int32Array;
  experts: Uint16Array;
  weights: Float32Array;
  gateNext: Uint16Array;
  gateNextValid: Uint8Array;
}

export function generateSyntheticRouting(params: Partial<SyntheticRoutingParams> = {}): SyntheticRouting {
  const p = { ...DEFAULT_SYNTHETIC_PARAMS, ...params };
  const { numExperts: E, topK: k } = p;
  const L = p.numLayers - 1;
  if (!(L >= 1 && k >= 1 && k <= E && p.sequences >= 1 && p.tokensPerSequence >= 1)) throw new Error('synthetic routing: bad geometry');
  for (const [name, v] of [['stickiness', p.stickiness], ['crossLayer', p.crossLayer], ['gateNextAccuracy', p.gateNextAccuracy]] as const) {
    if (!(v >= 0 && v <= 1)) throw new Error(`synthetic routing: ${name} must be in [0, 1]`);
  }
  const rand = splitmix32(p.seed);
  // Per layer: cumulative Zipf weights over experts (in id order) and the cross-layer affinity map.
  const cdf: Float64Array[] = [];
  const affinity: Int32Array[] = [];
  for (let l = 0; l < L; l++) {
    const rank = permutation(E, rand);
    const c = new Float64Array(E);
    let acc = 0;
    for (let e = 0; e < E; e++) c[e] = acc += 1 / Math.pow(rank[e] + 1, p.zipf);
    for (let e = 0; e < E; e++) c[e] /= acc;
    cdf.push(c);
    affinity.push(permutation(E, rand));
  }
  const zipfDraw = (l: number) => {
    const u = rand();
    const c = cdf[l];
    let lo = 0;
    let hi = E - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const T = p.tokensPerSequence;
  const rows = p.sequences * T * L;
  const out: SyntheticRouting = {
    meta: {
      modelId: 'synthetic routing (DeepSeek-V2-Lite geometry; not a model)',
      configHash: `synthetic:${JSON.stringify({ numLayers: p.numLayers, numExperts: E, topK: k })}`,
      numLayers: p.numLayers,
      moeLayers: Array.from({ length: L }, (_, i) => p.numLayers - L + i),
      numExperts: E,
      topK: k,
      routingSource: 'imported',
      dataset: `synthetic/zipf-sticky seed ${p.seed}`,
      batchSize: 1,
      promptLength: null,
      device: null,
      engineVersion: 'traces/src/synthetic-routing.ts',
      gitRevision: null,
      createdAt: p.createdAt,
      notes: `SYNTHETIC routing from traces/src/synthetic-routing.ts, not model routing: ${JSON.stringify(p)}`,
    },
    rows,
    step: new Int32Array(rows),
    layer: new Uint16Array(rows),
    seq: new Int32Array(rows),
    pos: new Int32Array(rows),
    experts: new Uint16Array(rows * k),
    weights: new Float32Array(rows * k),
    gateNext: new Uint16Array(rows * k),
    gateNextValid: new Uint8Array(rows),
  };
  // routing[(t * L + l) * k + j] of the current sequence.
  const routing = new Uint16Array(T * L * k);
  const chosen = new Uint8Array(E);
  const scores = new Float64Array(k);
  for (let s = 0; s < p.sequences; s++) {
    for (let t = 0; t < T; t++) {
      for (let l = 0; l < L; l++) {
        const base = (t * L + l) * k;
        chosen.fill(0);
        let n = 0;
        const take = (e: number) => {
          if (n < k && !chosen[e]) {
            chosen[e] = 1;
            routing[base + n++] = e;
          }
        };
        if (t > 0) for (let j = 0; j < k; j++) if (rand() < p.stickiness) take(routing[((t - 1) * L + l) * k + j]);
        if (l > 0) for (let j = 0; j < k; j++) if (rand() < p.crossLayer) take(affinity[l][routing[(t * L + l - 1) * k + j]]);
        while (n < k) take(zipfDraw(l));
      }
    }
    // Rows of this sequence: one step per token, steps continuing across sequences (like an ESFT import).
    for (let t = 0; t < T; t++) {
      for (let l = 0; l < L; l++) {
        const r = (s * T + t) * L + l;
        out.step[r] = s * T + t;
        out.layer[r] = out.meta.moeLayers[l];
        out.seq[r] = s;
        out.pos[r] = t;
        let sum = 0;
        for (let j = 0; j < k; j++) sum += scores[j] = Math.exp(-j * 0.5 + rand());
        scores.sort().reverse();
        for (let j = 0; j < k; j++) {
          out.experts[r * k + j] = routing[(t * L + l) * k + j];
          out.weights[r * k + j] = Math.round((0.7 * scores[j] / sum) * 1e4) / 1e4;
        }
        if (l + 1 < L) {
          out.gateNextValid[r] = 1;
          chosen.fill(0);
          for (let j = 0; j < k; j++) {
            let e = routing[(t * L + l + 1) * k + j];
            if (rand() >= p.gateNextAccuracy) e = zipfDraw(l + 1);
            while (chosen[e]) e = (e + 1) % E;
            chosen[e] = 1;
            out.gateNext[r * k + j] = e;
          }
        }
      }
    }
  }
  return out;
}

export function writeSyntheticTrace(path: string, params: Partial<SyntheticRoutingParams> = {}): SyntheticRouting {
  const g = generateSyntheticRouting(params);
  const w = TraceWriter.create(path, g.meta, { gateNext: true });
  try {
    w.append({
      step: g.step,
      phase: new Uint8Array(g.rows).fill(PHASE_DECODE),
      layer: g.layer,
      seq: g.seq,
      pos: g.pos,
      experts: g.experts,
      weights: g.weights,
      gateNext: g.gateNext,
      gateNextValid: g.gateNextValid,
    });
    w.close();
  } catch (err) {
    w.abort();
    throw err;
  }
  return g;
}

// `node dist/traces/src/synthetic-routing.js OUT [--seed N] [--sequences N] [--tokens N]` regenerates a sample.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [out, ...rest] = process.argv.slice(2);
  if (!out) {
    process.stderr.write('usage: node dist/traces/src/synthetic-routing.js OUT.arrow [--seed N] [--sequences N] [--tokens N]\n');
    process.exit(2);
  }
  const opt = (name: string) => {
    const i = rest.indexOf(name);
    return i >= 0 ? Number(rest[i + 1]) : undefined;
  };
  const params: Partial<SyntheticRoutingParams> = {};
  if (opt('--seed') !== undefined) params.seed = opt('--seed');
  if (opt('--sequences') !== undefined) params.sequences = opt('--sequences');
  if (opt('--tokens') !== undefined) params.tokensPerSequence = opt('--tokens');
  const g = writeSyntheticTrace(out, params);
  process.stdout.write(`wrote ${out}: ${g.rows} rows\n`);
}
