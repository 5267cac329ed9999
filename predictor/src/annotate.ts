/**
 * Fills a routing corpus's `predictions` slot from a trained predictor, for the simulator's `predicted`
 * prefetcher: for token t at MoE layer l, the `budget` experts the predictor named at layer l - k (its
 * lookahead), best first. Layers l < k have no prediction (NO_EXPERT padding): nothing runs k layers
 * earlier. Uses the pure-TypeScript inference (infer.ts), so no TensorFlow.js is loaded.
 *
 * minProbability gates the prediction by confidence: an expert whose predicted probability
 * (sigmoid of its logit) is below it is left out (NO_EXPERT), so a prefetcher spends no transfer on it.
 * A wrong prefetch is not free: it takes copy bandwidth from demand fetches and a cache slot.
 */
import { BadInputError, UserError } from '../../core/src/errors.js';
import { NO_EXPERT, type RoutingCorpus } from '../../traces/src/sequences.js';
import { corpusGeometry, describeGeometry, sameGeometry } from './dataset.js';
import { usesScores } from './features.js';
import { PredictorRuntime } from './infer.js';

export interface AnnotateOptions {
  /** Keep only experts predicted with at least this probability (0..1; default 0 = keep all `budget`). */
  minProbability?: number;
  /** Called after each sequence (inference over a whole ESFT task takes seconds). */
  onSequence?: (done: number, total: number) => void;
}

/** Per sequence, the top-`budget` ids and their logits, laid out like SequenceRouting.predictions.ids. */
export interface RankedPredictions {
  lookahead: number;
  budget: number;
  ids: Uint16Array[];
  logits: Float32Array[];
}

export function annotateCorpus(corpus: RoutingCorpus, predictorDir: string, budget = 6, opts: AnnotateOptions = {}): void {
  annotateWith(corpus, PredictorRuntime.load(predictorDir), budget, predictorDir, opts);
}

export function annotateWith(corpus: RoutingCorpus, runtime: PredictorRuntime, budget: number, what = 'the predictor', opts: AnnotateOptions = {}): void {
  applyPredictions(corpus, rankPredictions(corpus, runtime, budget, what, opts.onSequence), opts.minProbability ?? 0);
}

/** Runs the predictor on every (token, layer) of the corpus; checks geometry, features and budget first. */
export function rankPredictions(corpus: RoutingCorpus, runtime: PredictorRuntime, budget: number, what = 'the predictor', onSequence?: (done: number, total: number) => void): RankedPredictions {
  const m = runtime.manifest;
  const pg = { moeLayers: m.geometry.moeLayers, numMoeLayers: m.geometry.moeLayers.length, numExperts: m.geometry.numExperts, topK: m.geometry.topK };
  const cg = corpusGeometry(corpus);
  if (!sameGeometry(cg, pg)) throw new BadInputError(what, `trained for ${describeGeometry(pg)}; the trace has ${describeGeometry(cg)}`);
  if (!Number.isInteger(budget) || budget < 1 || budget > pg.numExperts) throw new UserError(`option --predictor-budget: ${budget} must be a whole number from 1 to ${pg.numExperts} (the predictor's experts per layer)`);
  if (usesScores(runtime.spec) && corpus.sequences.some((s) => !s.scores)) throw new BadInputError(what, 'uses router scores, and the trace has none');
  const L = pg.numMoeLayers;
  const k = m.lookahead;
  const out = new Uint16Array(budget);
  const logits = new Float32Array(pg.numExperts);
  const ranked: RankedPredictions = { lookahead: k, budget, ids: [], logits: [] };
  for (const s of corpus.sequences) {
    const ids = new Uint16Array(s.length * L * budget).fill(NO_EXPERT);
    const lg = new Float32Array(s.length * L * budget).fill(-Infinity);
    for (let t = 0; t < s.length; t++) {
      for (let i = 0; i + k < L; i++) {
        runtime.predict(s, t, i, budget, out, logits);
        const base = (t * L + i + k) * budget;
        for (let j = 0; j < budget; j++) {
          ids[base + j] = out[j];
          lg[base + j] = logits[out[j]];
        }
      }
    }
    ranked.ids.push(ids);
    ranked.logits.push(lg);
    onSequence?.(ranked.ids.length, corpus.sequences.length);
  }
  return ranked;
}

/** Sets each sequence's predictions to the ranked ids whose probability is at least minProbability. */
export function applyPredictions(corpus: RoutingCorpus, ranked: RankedPredictions, minProbability: number): void {
  if (!(minProbability >= 0 && minProbability <= 1)) throw new UserError(`option --predictor-min-prob: ${minProbability} must be a probability from 0 to 1`);
  // sigmoid(logit) >= p  <=>  logit >= log(p / (1 - p)): compare logits, no exp per expert.
  const minLogit = minProbability <= 0 ? -Infinity : minProbability >= 1 ? Infinity : Math.log(minProbability / (1 - minProbability));
  corpus.sequences.forEach((s, n) => {
    const src = ranked.ids[n];
    const lg = ranked.logits[n];
    const ids = new Uint16Array(src.length).fill(NO_EXPERT);
    for (let i = 0; i < src.length; i++) if (src[i] !== NO_EXPERT && lg[i] >= minLogit) ids[i] = src[i];
    s.predictions = { lookahead: ranked.lookahead, width: ranked.budget, ids };
  });
}
