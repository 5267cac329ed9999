/**
 * Fills a routing corpus's `predictions` slot from a trained predictor, for the simulator's `predicted`
 * prefetcher: for token t at MoE layer l, the `budget` experts the predictor named at layer l - k (its
 * lookahead), best first. Layers l < k have no prediction (NO_EXPERT padding): nothing runs k layers
 * earlier. Uses the pure-TypeScript inference (infer.ts), so no TensorFlow.js is loaded.
 */
import { BadInputError, UserError } from '../../runtime/src/util/errors.js';
import { NO_EXPERT, type RoutingCorpus } from '../../traces/src/sequences.js';
import { corpusGeometry, describeGeometry, sameGeometry } from './dataset.js';
import { usesScores } from './features.js';
import { PredictorRuntime } from './infer.js';

export function annotateCorpus(corpus: RoutingCorpus, predictorDir: string, budget = 6): void {
  annotateWith(corpus, PredictorRuntime.load(predictorDir), budget, predictorDir);
}

export function annotateWith(corpus: RoutingCorpus, runtime: PredictorRuntime, budget: number, what = 'the predictor'): void {
  const m = runtime.manifest;
  const pg = { moeLayers: m.geometry.moeLayers, numMoeLayers: m.geometry.moeLayers.length, numExperts: m.geometry.numExperts, topK: m.geometry.topK };
  const cg = corpusGeometry(corpus);
  if (!sameGeometry(cg, pg)) throw new BadInputError(what, `trained for ${describeGeometry(pg)}; the trace has ${describeGeometry(cg)}`);
  if (!Number.isInteger(budget) || budget < 1 || budget > pg.numExperts) throw new UserError(`prediction budget ${budget} must be an integer in [1, ${pg.numExperts}]`);
  if (usesScores(runtime.spec) && corpus.sequences.some((s) => !s.scores)) throw new BadInputError(what, 'uses router scores, and the trace has none');
  const L = pg.numMoeLayers;
  const k = m.lookahead;
  const out = new Uint16Array(budget);
  for (const s of corpus.sequences) {
    const ids = new Uint16Array(s.length * L * budget).fill(NO_EXPERT);
    for (let t = 0; t < s.length; t++) {
      for (let i = 0; i + k < L; i++) {
        runtime.predict(s, t, i, budget, out);
        ids.set(out, (t * L + i + k) * budget);
      }
    }
    s.predictions = { lookahead: k, width: budget, ids };
  }
}
