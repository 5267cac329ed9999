/**
 * Feature vectors and labels of the expert predictor. A sample is (token t, MoE layer index i) of one
 * sequence; its label is the top-k set of MoE layer i + lookahead of the same token. The feature vector
 * is a list of blocks, each a fixed-width slice, described by data (FeatureSpec) so that predictor.json
 * carries it and any consumer (infer.ts, the simulator, the native runtime) can rebuild the same vector.
 *
 * Every block only reads what is known when layer i of token t has just been routed: this token's
 * routing at layers <= i, and earlier tokens' routing at any layer (decode runs tokens one after the
 * other). validateFeatureSpec refuses blocks that would peek at the future.
 */
import type { SequenceRouting } from '../../traces/src/sequences.js';

export type FeatureBlock =
  /**
   * Experts of token t + tokenOffset at MoE layer i + layerOffset, multi-hot weighted by routing weight
   * (zeros where that token or layer does not exist). Width numExperts; with perLayer, numMoeLayers *
   * numExperts and the multi-hot goes into the slot of the source layer i, so that the first dense layer
   * learns a separate embedding of every (layer, expert): expert ids mean different things at each layer.
   */
  | { kind: 'routing'; layerOffset: number; tokenOffset: number; perLayer?: boolean }
  /** One-hot of the source MoE layer index i (width numMoeLayers). */
  | { kind: 'layer' }
  /** The router's softmax over all experts for token t at MoE layer i + layerOffset (width numExperts; needs a trace with scores). */
  | { kind: 'scores'; layerOffset: number };

export interface FeatureGeometry {
  numMoeLayers: number;
  numExperts: number;
  topK: number;
}

export interface FeatureSpec extends FeatureGeometry {
  /** k: the label is MoE layer i + lookahead. */
  lookahead: number;
  blocks: FeatureBlock[];
}

export interface DefaultFeatureOptions {
  /** Layers of this token's routing included: i, i-1, ..., i-history+1. */
  history?: number;
  /** Include router scores (only when every trace has them). */
  scores?: boolean;
  /** Also give layer i's routing a per-layer slot (see FeatureBlock 'routing'.perLayer). */
  perLayer?: boolean;
}

export const DEFAULT_HISTORY = 3;

export function defaultFeatureSpec(g: FeatureGeometry, lookahead: number, opts: DefaultFeatureOptions = {}): FeatureSpec {
  const history = opts.history ?? DEFAULT_HISTORY;
  const blocks: FeatureBlock[] = [];
  for (let h = 0; h < history; h++) blocks.push({ kind: 'routing', layerOffset: -h, tokenOffset: 0 });
  if (opts.perLayer) blocks.push({ kind: 'routing', layerOffset: 0, tokenOffset: 0, perLayer: true });
  // The previous token at the target layer: the "same experts as last time" signal, learned instead of copied.
  blocks.push({ kind: 'routing', layerOffset: lookahead, tokenOffset: -1 });
  blocks.push({ kind: 'layer' });
  if (opts.scores) blocks.push({ kind: 'scores', layerOffset: 0 });
  const spec = { ...g, lookahead, blocks };
  const problems = featureSpecProblems(spec);
  if (problems.length > 0) throw new Error(`internal: default feature spec is invalid: ${problems.join('; ')}`);
  return spec;
}

export function blockWidth(b: FeatureBlock, g: FeatureGeometry): number {
  if (b.kind === 'layer') return g.numMoeLayers;
  return b.kind === 'routing' && b.perLayer ? g.numMoeLayers * g.numExperts : g.numExperts;
}

export function featureWidth(spec: FeatureSpec): number {
  return spec.blocks.reduce((w, b) => w + blockWidth(b, spec), 0);
}

/** Problems of a spec read from a file (empty when valid), including blocks that would use future routing. */
export function featureSpecProblems(spec: FeatureSpec): string[] {
  const p: string[] = [];
  const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  if (!isInt(spec.numMoeLayers) || spec.numMoeLayers < 1) p.push('numMoeLayers must be a positive integer');
  if (!isInt(spec.numExperts) || spec.numExperts < 1) p.push('numExperts must be a positive integer');
  if (!isInt(spec.topK) || spec.topK < 1 || spec.topK > spec.numExperts) p.push('topK must be in [1, numExperts]');
  if (!isInt(spec.lookahead) || spec.lookahead < 1 || spec.lookahead >= spec.numMoeLayers) p.push(`lookahead must be in [1, numMoeLayers - 1]`);
  if (!Array.isArray(spec.blocks) || spec.blocks.length === 0) {
    p.push('blocks must be a non-empty array');
    return p;
  }
  spec.blocks.forEach((b, n) => {
    if (b.kind === 'routing') {
      if (!isInt(b.layerOffset) || !isInt(b.tokenOffset)) p.push(`blocks[${n}]: offsets must be integers`);
      else if (b.perLayer !== undefined && typeof b.perLayer !== 'boolean') p.push(`blocks[${n}]: perLayer must be a boolean`);
      else if (b.tokenOffset > 0 || (b.tokenOffset === 0 && b.layerOffset > 0)) p.push(`blocks[${n}]: routing of a layer not yet computed (tokenOffset ${b.tokenOffset}, layerOffset ${b.layerOffset})`);
    } else if (b.kind === 'scores') {
      if (!isInt(b.layerOffset) || b.layerOffset > 0) p.push(`blocks[${n}]: scores layerOffset must be an integer <= 0`);
    } else if (b.kind !== 'layer') {
      p.push(`blocks[${n}]: unknown kind '${(b as { kind: unknown }).kind}'`);
    }
  });
  return p;
}

/** The most nonzeros a feature row can have (top-k per routing block, one for the layer, all for scores). */
export function maxNonzeros(spec: FeatureSpec): number {
  return spec.blocks.reduce((n, b) => n + (b.kind === 'routing' ? spec.topK : b.kind === 'layer' ? 1 : spec.numExperts), 0);
}

export function usesScores(spec: FeatureSpec): boolean {
  return spec.blocks.some((b) => b.kind === 'scores');
}

/**
 * Writes the feature vector of (t, i) into out[offset .. offset + featureWidth). The slice is fully
 * overwritten (zeros included), so buffers can be reused between batches.
 */
export function writeFeatures(s: SequenceRouting, t: number, i: number, spec: FeatureSpec, out: Float32Array, offset: number): void {
  const L = spec.numMoeLayers;
  const E = spec.numExperts;
  const k = spec.topK;
  let o = offset;
  for (const b of spec.blocks) {
    const w = blockWidth(b, spec);
    out.fill(0, o, o + w);
    if (b.kind === 'routing') {
      const tt = t + b.tokenOffset;
      const l = i + b.layerOffset;
      if (tt >= 0 && tt < s.length && l >= 0 && l < L) {
        const base = (tt * L + l) * k;
        const slot = b.perLayer ? o + i * E : o;
        for (let j = 0; j < k; j++) out[slot + s.experts[base + j]] += s.weights[base + j];
      }
    } else if (b.kind === 'layer') {
      out[o + i] = 1;
    } else {
      const l = i + b.layerOffset;
      if (!s.scores) throw new Error('internal: scores feature on a sequence without scores (checked when loading)');
      if (l >= 0) out.set(s.scores.subarray((t * L + l) * E, (t * L + l + 1) * E), o);
    }
    o += w;
  }
}

/** Writes the multi-hot label (1 for each expert of token t at MoE layer `target`) into out[offset .. offset + numExperts). */
export function writeLabel(s: SequenceRouting, t: number, target: number, g: FeatureGeometry, out: Float32Array, offset: number): void {
  out.fill(0, offset, offset + g.numExperts);
  const base = (t * g.numMoeLayers + target) * g.topK;
  for (let j = 0; j < g.topK; j++) out[offset + s.experts[base + j]] = 1;
}
