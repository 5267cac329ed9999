/**
 * Value checks of the routing columns that a type check cannot make: a token's top-k names k distinct
 * experts (a repeated one made the simulator's timing model fail with NaN durations), routing weights
 * are finite and not negative, router scores are probabilities, predicted ids are experts of the model.
 * Each refusal names the row, its layer and the offending value.
 */
import { BadInputError } from '../../core/src/errors.js';
import type { TraceTable } from './reader.js';

export function checkRoutingValues(t: TraceTable): void {
  const k = t.meta.topK;
  const E = t.meta.numExperts;
  const where = (r: number) => `row ${r} (step ${t.step[r]}, layer ${t.layer[r]}, sequence ${t.seq[r]}, position ${t.pos[r]})`;
  // Expert ids are below E (checked before), so one stamp per expert finds repeats in O(k) per row.
  const stamp = new Int32Array(E).fill(-1);
  for (let r = 0; r < t.rows; r++) {
    for (let j = 0; j < k; j++) {
      const e = t.experts[r * k + j];
      if (stamp[e] === r) throw new BadInputError(t.path, `${where(r)}: expert ${e} appears twice in the top-${k} (${Array.from(t.experts.subarray(r * k, r * k + k)).join(',')})`);
      stamp[e] = r;
      const w = t.weights[r * k + j];
      if (!Number.isFinite(w) || w < 0) throw new BadInputError(t.path, `${where(r)}: routing weight ${w} of expert ${e} is not a finite number >= 0`);
    }
  }
  if (t.scores) {
    for (let i = 0; i < t.scores.length; i++) {
      const s = t.scores[i];
      // float32 softmax outputs may round a hair above 1
      if (!(s >= 0 && s <= 1 + 1e-5)) throw new BadInputError(t.path, `${where(Math.floor(i / E))}: router score ${s} of expert ${i % E} is not a probability in [0, 1]`);
    }
  }
  if (t.predicted) {
    t.predicted.forEach((ids, r) => {
      for (const e of ids) if (e >= E) throw new BadInputError(t.path, `${where(r)}: predicted expert ${e} is not below numExperts ${E}`);
    });
  }
}
