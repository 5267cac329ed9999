/**
 * Evaluates a predictor (any function from feature rows to logits) and the baselines on the same
 * samples, with the same metrics, so that every comparison in the report is like for like.
 */
import type { SampleSet } from './dataset.js';
import { featureWidth, writeFeatures, type FeatureGeometry, type FeatureSpec } from './features.js';
import { MetricsAccumulator, topIndices, type Metrics } from './metrics.js';
import { nextGateRanker, popularityOrder, popularityRanker, previousTokenRanker, type BaselineName, type Ranker } from './baselines.js';

/** Feature rows [n * width] in, logits [n * numExperts] out (higher = more likely used). */
export type Scorer = (features: Float32Array, n: number) => Float32Array;

export interface EvalReport {
  lookahead: number;
  samples: number;
  budgets: number[];
  /** Absent when only baselines were evaluated. */
  predictor?: Metrics;
  baselines: Partial<Record<BaselineName, Metrics>>;
}

export interface EvalOptions {
  budgets: number[];
  /** Model layer ids of the MoE layers (for labelling per-layer results). */
  moeLayers: number[];
  /** Popularity counts [layer * numExperts + expert] from the training data. */
  popularity: ArrayLike<number>;
  batchSize?: number;
  onBatch?: (done: number) => void;
}

/** The next-gate baseline exists for k = 1 when every evaluated sequence carries gate_next. */
export function hasNextGate(set: SampleSet, lookahead: number): boolean {
  return lookahead === 1 && set.sequences.length > 0 && set.sequences.every((s) => s.gateNext !== undefined);
}

export function evaluate(set: SampleSet, spec: FeatureSpec, scorer: Scorer | null, opts: EvalOptions): EvalReport {
  const g: FeatureGeometry = spec;
  const L = g.numMoeLayers;
  const E = g.numExperts;
  const k = g.topK;
  const maxBudget = Math.max(...opts.budgets);
  if (maxBudget > E) throw new Error(`internal: budget ${maxBudget} exceeds ${E} experts`);
  const order = popularityOrder(opts.popularity, g);
  const rankers: Partial<Record<BaselineName, Ranker>> = {
    previousToken: previousTokenRanker(g, spec.lookahead, order),
    popularity: popularityRanker(g, spec.lookahead, order),
  };
  if (hasNextGate(set, spec.lookahead)) rankers.nextGate = nextGateRanker(g, order);
  const acc: Partial<Record<BaselineName | 'predictor', MetricsAccumulator>> = {};
  for (const name of Object.keys(rankers) as BaselineName[]) acc[name] = new MetricsAccumulator(L, opts.budgets);
  if (scorer) acc.predictor = new MetricsAccumulator(L, opts.budgets);

  const width = featureWidth(spec);
  const batch = opts.batchSize ?? 2048;
  const features = new Float32Array(batch * width);
  const ranked = new Uint16Array(maxBudget);
  const truth = new Uint8Array(E);
  for (let start = 0; start < set.count; start += batch) {
    const n = Math.min(batch, set.count - start);
    let logits: Float32Array | null = null;
    if (scorer) {
      for (let r = 0; r < n; r++) {
        const q = (start + r) * 3;
        writeFeatures(set.sequences[set.samples[q]], set.samples[q + 1], set.samples[q + 2], spec, features, r * width);
      }
      logits = scorer(features, n);
    }
    for (let r = 0; r < n; r++) {
      const q = (start + r) * 3;
      const s = set.sequences[set.samples[q]];
      const t = set.samples[q + 1];
      const i = set.samples[q + 2];
      const target = i + spec.lookahead;
      truth.fill(0);
      const base = (t * L + target) * k;
      let truthCount = 0;
      for (let j = 0; j < k; j++) {
        if (!truth[s.experts[base + j]]) truthCount++;
        truth[s.experts[base + j]] = 1;
      }
      if (logits) {
        topIndices(logits, r * E, E, maxBudget, ranked);
        acc.predictor!.add(target, ranked, truth, truthCount);
      }
      for (const name of Object.keys(rankers) as BaselineName[]) {
        rankers[name]!(s, t, i, ranked, maxBudget);
        acc[name]!.add(target, ranked, truth, truthCount);
      }
    }
    opts.onBatch?.(start + n);
  }
  const report: EvalReport = { lookahead: spec.lookahead, samples: set.count, budgets: opts.budgets.slice(), baselines: {} };
  if (acc.predictor) report.predictor = acc.predictor.result(opts.moeLayers);
  for (const name of Object.keys(rankers) as BaselineName[]) report.baselines[name] = acc[name]!.result(opts.moeLayers);
  return report;
}
