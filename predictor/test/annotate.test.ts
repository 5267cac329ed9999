import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../core/test/helpers.js';
import { NO_EXPERT } from '../../traces/src/sequences.js';
import { annotateCorpus } from '../src/annotate.js';
import { PredictorRuntime } from '../src/infer.js';
import { structuredSequences, tinyCorpus, writeRandomPredictor } from './fixtures.js';

const d = tempDir('predictor-annotate-');
afterAll(() => d.cleanup());
const g = { L: 4, k: 2, E: 8 };

function tinyPredictor(dir: string, lookahead: number): void {
  writeRandomPredictor(dir, { moeLayers: [1, 2, 3, 4], numExperts: 8, topK: 2 }, lookahead);
}

describe('annotateCorpus', () => {
  it("fills predictions at layer l with what the predictor said at layer l - k, NO_EXPERT below k", () => {
    const dir = join(d.path, 'k2');
    tinyPredictor(dir, 2);
    const corpus = tinyCorpus(g, structuredSequences(g, 2, 3, 1));
    annotateCorpus(corpus, dir, 3);
    const runtime = PredictorRuntime.load(dir);
    const expected = new Uint16Array(3);
    for (const s of corpus.sequences) {
      expect(s.predictions!.lookahead).toBe(2);
      expect(s.predictions!.width).toBe(3);
      expect(s.predictions!.ids.length).toBe(s.length * 4 * 3);
      for (let t = 0; t < s.length; t++) {
        for (let l = 0; l < 4; l++) {
          const got = Array.from(s.predictions!.ids.subarray((t * 4 + l) * 3, (t * 4 + l + 1) * 3));
          if (l < 2) {
            expect(got).toEqual([NO_EXPERT, NO_EXPERT, NO_EXPERT]);
          } else {
            runtime.predict(s, t, l - 2, 3, expected);
            expect(got).toEqual(Array.from(expected));
            expect(new Set(got).size).toBe(3);
          }
        }
      }
    }
  });

  it('keeps only experts at or above the probability gate, best first', () => {
    const dir = join(d.path, 'k2');
    const corpus = tinyCorpus(g, structuredSequences(g, 2, 3, 1));
    const runtime = PredictorRuntime.load(dir);
    const ids = new Uint16Array(4);
    const logits = new Float32Array(8);
    // An untrained predictor's probabilities sit near 0.5: put the gate at their median so it cuts.
    const probs: number[] = [];
    for (const s of corpus.sequences) for (let t = 0; t < s.length; t++) for (let i = 0; i < 2; i++) {
      runtime.predict(s, t, i, 4, ids, logits);
      for (const e of ids) probs.push(1 / (1 + Math.exp(-logits[e])));
    }
    // Halfway between two neighbours, so no probability sits on the gate (f32 logits vs f64 here).
    probs.sort((a, b) => a - b);
    const mid = Math.floor(probs.length / 2);
    const gate = (probs[mid] + probs.slice(mid).find((p) => p > probs[mid])!) / 2;
    annotateCorpus(corpus, dir, 4, { minProbability: gate });
    let kept = 0;
    let dropped = 0;
    for (const s of corpus.sequences) {
      for (let t = 0; t < s.length; t++) {
        for (let l = 2; l < 4; l++) {
          runtime.predict(s, t, l - 2, 4, ids, logits);
          const want = Array.from(ids).map((e) => (1 / (1 + Math.exp(-logits[e])) >= gate ? e : NO_EXPERT));
          kept += want.filter((e) => e !== NO_EXPERT).length;
          dropped += want.filter((e) => e === NO_EXPERT).length;
          expect(Array.from(s.predictions!.ids.subarray((t * 4 + l) * 4, (t * 4 + l + 1) * 4))).toEqual(want);
        }
      }
    }
    // The gate must have cut something and kept something, or the comparison proves little.
    expect(kept).toBeGreaterThan(0);
    expect(dropped).toBeGreaterThan(0);
    annotateCorpus(corpus, dir, 4, { minProbability: 1 });
    expect(corpus.sequences.every((s) => s.predictions!.ids.every((e) => e === NO_EXPERT))).toBe(true);
    expect(() => annotateCorpus(corpus, dir, 4, { minProbability: 1.5 })).toThrow(/option --predictor-min-prob: 1\.5 must be a probability from 0 to 1/);
  });

  it('refuses a predictor trained for another geometry, and a bad budget', () => {
    const dir = join(d.path, 'k1');
    tinyPredictor(dir, 1);
    const other = { L: 4, k: 2, E: 10 };
    expect(() => annotateCorpus(tinyCorpus(other, structuredSequences(other, 1, 2, 1)), dir)).toThrow(/trained for 4 MoE layers \(1\.\.4\), 8 experts, top-2; the trace has 4 MoE layers \(1\.\.4\), 10 experts/);
    expect(() => annotateCorpus(tinyCorpus(g, structuredSequences(g, 1, 2, 1)), dir, 9)).toThrow(/option --predictor-budget: 9 must be a whole number from 1 to 8/);
  });
});
