/**
 * A trace regrouped by sequence: each sequence's tokens in position order with their routing at every
 * MoE layer. This is the view the simulator (which re-batches sequences into lanes) and the predictor
 * (which learns along a token's path through the layers) both need.
 */
import { BadInputError } from '../../core/src/errors.js';
import type { RunMeta } from './schema.js';
import type { TraceTable } from './reader.js';

export interface SequenceRouting {
  seq: number;
  /** Tokens in the sequence. */
  length: number;
  /** Token positions, ascending. */
  positions: Int32Array;
  /** ((t * numMoeLayers) + l) * topK + j: expert j of token t at MoE layer index l (router order). */
  experts: Uint16Array;
  weights: Float32Array;
  /** Same layout as experts; valid where gateNextValid[t * L + l] is 1. */
  gateNext?: Uint16Array;
  gateNextValid?: Uint8Array;
  /** ((t * L) + l) * numExperts + e. */
  scores?: Float32Array;
  /**
   * Experts a predictor named for token t at MoE layer l, predicted `lookahead` layers earlier:
   * ids[((t * L) + l) * width + j], padded with NO_EXPERT. Filled by a predictor (predictor/) or from
   * the trace's `predicted` column; consumed by the simulator's `predicted` prefetcher.
   */
  predictions?: { lookahead: number; width: number; ids: Uint16Array };
}

/** Padding in fixed-width expert-id arrays. */
export const NO_EXPERT = 0xffff;

export interface RoutingCorpus {
  meta: RunMeta;
  /** Model layer ids of the MoE layers, ascending; index l above refers to moeLayers[l]. */
  moeLayers: number[];
  topK: number;
  numExperts: number;
  /** In order of first appearance in the trace. */
  sequences: SequenceRouting[];
}

export function toSequences(t: TraceTable): RoutingCorpus {
  const { meta } = t;
  const L = meta.moeLayers.length;
  const k = meta.topK;
  const E = meta.numExperts;
  const layerIndex = new Map(meta.moeLayers.map((l, i) => [l, i]));
  // seq -> pos -> row of each layer
  const bySeq = new Map<number, Map<number, Int32Array>>();
  for (let r = 0; r < t.rows; r++) {
    let positions = bySeq.get(t.seq[r]);
    if (!positions) bySeq.set(t.seq[r], (positions = new Map()));
    let rowsOfToken = positions.get(t.pos[r]);
    if (!rowsOfToken) positions.set(t.pos[r], (rowsOfToken = new Int32Array(L).fill(-1)));
    const l = layerIndex.get(t.layer[r])!;
    if (rowsOfToken[l] !== -1) throw new BadInputError(t.path, `sequence ${t.seq[r]} position ${t.pos[r]} appears twice at layer ${t.layer[r]}`);
    rowsOfToken[l] = r;
  }
  const sequences: SequenceRouting[] = [];
  for (const [seq, positions] of bySeq) {
    const pos = Int32Array.from([...positions.keys()]).sort();
    const T = pos.length;
    const s: SequenceRouting = {
      seq,
      length: T,
      positions: pos,
      experts: new Uint16Array(T * L * k),
      weights: new Float32Array(T * L * k),
    };
    if (t.gateNext) {
      s.gateNext = new Uint16Array(T * L * k);
      s.gateNextValid = new Uint8Array(T * L);
    }
    if (t.scores) s.scores = new Float32Array(T * L * E);
    for (let ti = 0; ti < T; ti++) {
      const rowsOfToken = positions.get(pos[ti])!;
      for (let l = 0; l < L; l++) {
        const r = rowsOfToken[l];
        if (r === -1) throw new BadInputError(t.path, `sequence ${seq} position ${pos[ti]} has no row for MoE layer ${meta.moeLayers[l]}`);
        const dst = (ti * L + l) * k;
        s.experts.set(t.experts.subarray(r * k, r * k + k), dst);
        s.weights.set(t.weights.subarray(r * k, r * k + k), dst);
        if (s.gateNext) {
          s.gateNext.set(t.gateNext!.subarray(r * k, r * k + k), dst);
          s.gateNextValid![ti * L + l] = t.gateNextValid![r];
        }
        if (s.scores) s.scores.set(t.scores!.subarray(r * E, r * E + E), (ti * L + l) * E);
      }
    }
    sequences.push(s);
  }
  return { meta, moeLayers: meta.moeLayers.slice(), topK: k, numExperts: E, sequences };
}
