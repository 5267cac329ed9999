/**
 * The predictions a learned predictor has to beat, each as a ranking of experts for (token t, source
 * layer i) -> target layer i + k:
 * - previous token: the experts the previous token used at the target layer (by routing weight), then
 *   the target layer's most popular experts to fill budgets above top-k (and for the first token);
 * - popularity: the target layer's most used experts, counted on the training data;
 * - next gate (k = 1, traces with gate_next only): layer i+1's router applied to layer i's input, in
 *   router order, filled up by popularity.
 */
import type { SequenceRouting } from '../../traces/src/sequences.js';
import type { FeatureGeometry } from './features.js';

/** Routed-token counts [layer * numExperts + expert] over the sequences. */
export function countPopularity(sequences: SequenceRouting[], g: FeatureGeometry): Float64Array {
  const L = g.numMoeLayers;
  const k = g.topK;
  const counts = new Float64Array(L * g.numExperts);
  for (const s of sequences) {
    for (let t = 0; t < s.length; t++) {
      for (let l = 0; l < L; l++) {
        const base = (t * L + l) * k;
        for (let j = 0; j < k; j++) counts[l * g.numExperts + s.experts[base + j]]++;
      }
    }
  }
  return counts;
}

/** Per layer, all experts by descending count (ties: lower id first): [layer * numExperts + rank]. */
export function popularityOrder(counts: ArrayLike<number>, g: FeatureGeometry): Uint16Array {
  const E = g.numExperts;
  const order = new Uint16Array(g.numMoeLayers * E);
  for (let l = 0; l < g.numMoeLayers; l++) {
    const ids = Array.from({ length: E }, (_, e) => e).sort((a, b) => counts[l * E + b] - counts[l * E + a] || a - b);
    order.set(ids, l * E);
  }
  return order;
}

export type BaselineName = 'previousToken' | 'popularity' | 'nextGate';

export const BASELINE_LABELS: Record<BaselineName, string> = {
  previousToken: 'previous token',
  popularity: 'most popular',
  nextGate: 'next-layer gate',
};

/** Writes a ranking of `count` distinct experts for sample (t, i) into out. */
export type Ranker = (s: SequenceRouting, t: number, i: number, out: Uint16Array, count: number) => void;

/** Puts `first` (distinct ids) at the front, then the target layer's popularity order without repeats. */
function fillRanking(first: ArrayLike<number>, firstCount: number, order: Uint16Array, layer: number, E: number, out: Uint16Array, count: number): void {
  let n = 0;
  for (let j = 0; j < firstCount && n < count; j++) {
    let dup = false;
    for (let m = 0; m < n; m++) if (out[m] === first[j]) dup = true;
    if (!dup) out[n++] = first[j];
  }
  for (let r = 0; r < E && n < count; r++) {
    const e = order[layer * E + r];
    let dup = false;
    for (let m = 0; m < n; m++) if (out[m] === e) dup = true;
    if (!dup) out[n++] = e;
  }
}

export function popularityRanker(g: FeatureGeometry, lookahead: number, order: Uint16Array): Ranker {
  return (_s, _t, i, out, count) => fillRanking([], 0, order, i + lookahead, g.numExperts, out, count);
}

export function previousTokenRanker(g: FeatureGeometry, lookahead: number, order: Uint16Array): Ranker {
  const L = g.numMoeLayers;
  const k = g.topK;
  const ids = new Uint16Array(k);
  return (s, t, i, out, count) => {
    const target = i + lookahead;
    if (t === 0) return fillRanking([], 0, order, target, g.numExperts, out, count);
    const base = ((t - 1) * L + target) * k;
    // Router order is not always weight order (ESFT lists are); sort by weight so budgets below k keep the strongest.
    const idx = Array.from({ length: k }, (_, j) => j).sort((a, b) => s.weights[base + b] - s.weights[base + a] || a - b);
    idx.forEach((j, n) => (ids[n] = s.experts[base + j]));
    fillRanking(ids, k, order, target, g.numExperts, out, count);
  };
}

/** Only meaningful for lookahead 1 and sequences with gateNext; the caller checks both. */
export function nextGateRanker(g: FeatureGeometry, order: Uint16Array): Ranker {
  const L = g.numMoeLayers;
  const k = g.topK;
  return (s, t, i, out, count) => {
    if (!s.gateNext || !s.gateNextValid![t * L + i]) return fillRanking([], 0, order, i + 1, g.numExperts, out, count);
    const base = (t * L + i) * k;
    fillRanking(s.gateNext.subarray(base, base + k), k, order, i + 1, g.numExperts, out, count);
  };
}
