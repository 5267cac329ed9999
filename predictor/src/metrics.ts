/**
 * Recall and precision of ranked expert predictions at several budgets, per target layer and overall.
 * For a sample whose true set is S (the top-k of the target layer) and a ranking R:
 * recall@B = |R[0..B) ∩ S| / |S|, precision@B = |R[0..B) ∩ S| / B.
 */
import type { FeatureGeometry } from './features.js';

export const STANDARD_BUDGETS = [6, 8, 12, 16] as const;

/**
 * Top-k itself plus the standard budgets below numExperts: a budget of every expert has recall 100% by
 * construction, so reporting it would look like a result (8 experts, budget 8).
 */
export function defaultBudgets(g: FeatureGeometry): number[] {
  return [...new Set([g.topK, ...STANDARD_BUDGETS.filter((b) => b < g.numExperts)])].sort((a, b) => a - b);
}

export interface AtBudget {
  recall: number;
  precision: number;
}

export interface LayerMetrics {
  /** Model layer id of the target MoE layer. */
  layer: number;
  /** MoE layer index of the target. */
  layerIndex: number;
  samples: number;
  /** Keyed by budget (as a string, for JSON). */
  at: Record<string, AtBudget>;
}

export interface Metrics {
  budgets: number[];
  overall: { samples: number; at: Record<string, AtBudget> };
  /** Target layers that had samples, ascending. */
  perLayer: LayerMetrics[];
}

export class MetricsAccumulator {
  private readonly samples: Float64Array;
  /** [layer][budget] summed recall / precision */
  private readonly recallSum: Float64Array;
  private readonly precisionSum: Float64Array;
  private readonly maxBudget: number;

  constructor(private readonly numLayers: number, readonly budgets: number[]) {
    if (budgets.length === 0) throw new Error('internal: no budgets');
    this.maxBudget = Math.max(...budgets);
    this.samples = new Float64Array(numLayers);
    this.recallSum = new Float64Array(numLayers * budgets.length);
    this.precisionSum = new Float64Array(numLayers * budgets.length);
  }

  /**
   * ranked: expert ids, best first, at least max(budgets) of them (distinct); truth: 1 at each true
   * expert; truthCount: how many ones truth has.
   */
  add(targetLayer: number, ranked: ArrayLike<number>, truth: Uint8Array, truthCount: number): void {
    this.samples[targetLayer]++;
    let hits = 0;
    let b = 0;
    const base = targetLayer * this.budgets.length;
    for (let r = 0; r < this.maxBudget; r++) {
      if (truth[ranked[r]]) hits++;
      while (b < this.budgets.length && this.budgets[b] === r + 1) {
        this.recallSum[base + b] += hits / truthCount;
        this.precisionSum[base + b] += hits / this.budgets[b];
        b++;
      }
    }
  }

  result(moeLayers: number[]): Metrics {
    const perLayer: LayerMetrics[] = [];
    const totalR = new Float64Array(this.budgets.length);
    const totalP = new Float64Array(this.budgets.length);
    let total = 0;
    for (let l = 0; l < this.numLayers; l++) {
      const n = this.samples[l];
      if (n === 0) continue;
      const at: Record<string, AtBudget> = {};
      this.budgets.forEach((bud, b) => {
        at[bud] = { recall: this.recallSum[l * this.budgets.length + b] / n, precision: this.precisionSum[l * this.budgets.length + b] / n };
        totalR[b] += this.recallSum[l * this.budgets.length + b];
        totalP[b] += this.precisionSum[l * this.budgets.length + b];
      });
      total += n;
      perLayer.push({ layer: moeLayers[l], layerIndex: l, samples: n, at });
    }
    const at: Record<string, AtBudget> = {};
    this.budgets.forEach((bud, b) => (at[bud] = { recall: total ? totalR[b] / total : 0, precision: total ? totalP[b] / total : 0 }));
    return { budgets: this.budgets.slice(), overall: { samples: total, at }, perLayer };
  }
}

/** Indices of the `count` largest values of v[offset .. offset + width), best first; ties go to the lower index. */
export function topIndices(v: ArrayLike<number>, offset: number, width: number, count: number, out: Uint16Array): void {
  let filled = 0;
  for (let e = 0; e < width; e++) {
    const x = v[offset + e];
    if (filled < count) {
      let p = filled++;
      while (p > 0 && v[offset + out[p - 1]] < x) {
        out[p] = out[p - 1];
        p--;
      }
      out[p] = e;
    } else if (x > v[offset + out[count - 1]]) {
      let p = count - 1;
      while (p > 0 && v[offset + out[p - 1]] < x) {
        out[p] = out[p - 1];
        p--;
      }
      out[p] = e;
    }
  }
}
