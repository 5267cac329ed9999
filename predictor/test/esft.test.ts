import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { esftRoot, tempDir } from '../../core/test/helpers.js';
import { importEsft } from '../../traces/src/import-esft.js';
import { buildSamples, corpusGeometry, loadTraces, splitBySequence } from '../src/dataset.js';
import { countPopularity } from '../src/baselines.js';
import { evaluate } from '../src/evaluate.js';
import { defaultFeatureSpec, featureWidth } from '../src/features.js';
import { initMlpWeights } from '../src/mlp.js';
import { loadTf } from '../src/tf-backend.js';
import { TfMlp } from '../src/tf-mlp.js';
import { trainMlp } from '../src/train.js';

const intentDir = join(esftRoot, 'intent');
const present = existsSync(intentDir);
if (!present) console.warn(`[skip] predictor ESFT test: ${intentDir} is absent (real ESFT routing traces live in ../shared beside the checkout)`);

describe.skipIf(!present)('predictor on real ESFT routing (a subset of esft/intent)', () => {
  const d = tempDir('predictor-esft-');
  afterAll(() => d.cleanup());

  it('a short training beats the previous-token and popularity baselines on held-out sequences', async () => {
    const path = join(d.path, 'intent.arrow');
    importEsft(intentDir, path, { quiet: true });
    const [trace] = loadTraces([path]);
    // 40 sequences (~2,600 tokens) keep this under a minute on 2 cores.
    trace.corpus.sequences = trace.corpus.sequences.slice(0, 40);
    const split = splitBySequence([trace], 7);
    const g = corpusGeometry(trace.corpus);
    const spec = defaultFeatureSpec(g, 1, { perLayer: true });
    const sets = { train: buildSamples(split.train, g.numMoeLayers, 1), val: buildSamples(split.val, g.numMoeLayers, 1), test: buildSamples(split.test, g.numMoeLayers, 1) };
    const { tf } = await loadTf();
    const arch = { inputWidth: featureWidth(spec), hidden: [128], outputWidth: g.numExperts, activation: 'relu' as const };
    const model = new TfMlp(tf, arch, initMlpWeights(arch, 1));
    try {
      const result = await trainMlp(tf, model, spec, sets.train, sets.val, { maxEpochs: 2, batchSize: 512, learningRate: 2e-3, patience: 2, seed: 1 });
      expect(result.history.length).toBe(2);
      const report = evaluate(sets.test, spec, model.scorer(), { budgets: [6, 16], moeLayers: g.moeLayers, popularity: countPopularity([...split.train, ...split.val], g) });
      const r6 = (m: typeof report.predictor) => m!.overall.at[6].recall;
      console.log(`ESFT intent subset, k = 1: recall@6 predictor ${r6(report.predictor).toFixed(3)}, previous token ${r6(report.baselines.previousToken).toFixed(3)}, popularity ${r6(report.baselines.popularity).toFixed(3)}`);
      expect(r6(report.predictor)).toBeGreaterThan(r6(report.baselines.previousToken));
      expect(r6(report.predictor)).toBeGreaterThan(r6(report.baselines.popularity));
    } finally {
      model.dispose();
    }
  });
});
