/**
 * Issue 12, predicted prefetch at the real routing geometry: DeepSeek-V2-Lite's 26 MoE layers x 64 experts,
 * top-6, routing replayed from the real ESFT traces, a predictor of the default features and a hidden layer
 * of 256 (seeded random weights: the decisions are compared, not the accuracy). The runtime predicts in-line
 * with its C++ port (native/src/offload/predictor_mlp.cpp); the simulator plays the predictions of the
 * TypeScript inference. Equal prefetch counts and hits mean every prediction named the same experts. The
 * model has DeepSeek-V2-Lite's layer and expert counts but small widths, so the CPU engine runs it quickly.
 * Skips (with a message) without ../shared/traces/esft.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { annotateCorpus } from '../../../predictor/src/annotate.js';
import { writeRandomPredictor } from '../../../predictor/test/fixtures.js';
import { makeLayerCaches } from '../../../sim/src/cache/replay.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { buildPrefetchPlan } from '../../../sim/src/prefetch/sources.js';
import { prepareReplay } from '../../../sim/src/replay/replay-corpus.js';
import { simulateTiming } from '../../../sim/src/timing/engine.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { tempDir } from '../../../core/test/helpers.js';
import { recordTrace } from '../../src/record/recorder.js';
import { makeCheckpoint, requireAddonOrSkip } from '../engine/helpers.js';
import { benchEsftDir, importBenchReplays } from '../helpers/esft-replays.js';

const ready = requireAddonOrSkip('predicted prefetch at the ESFT geometry');
const esft = benchEsftDir(resolve(import.meta.dirname, '..', '..', '..'));
if (!esft.have) console.warn(`predicted prefetch at the ESFT geometry: skipped, no ESFT traces at ${esft.dir}`);

/** DeepSeek-V2-Lite's routing geometry (27 layers, the first dense; 64 routed experts, top-6) at small widths. */
const SMALL_LITE = { hidden_size: 128, moe_intermediate_size: 32, intermediate_size: 128, num_attention_heads: 2, num_key_value_heads: 2, kv_lora_rank: 32, q_lora_rank: null, qk_nope_head_dim: 16, qk_rope_head_dim: 16, v_head_dim: 16, vocab_size: 512, bos_token_id: 0, eos_token_id: 1 };

describe.skipIf(!ready || !esft.have)('predicted prefetch at the ESFT geometry: runtime = simulator', () => {
  const tmp = tempDir('pf-pred-esft-');
  const paths = { model: '', translation: '', predictor: '' };
  beforeAll(async () => {
    const geometry = join(tmp.path, 'small-lite.json');
    writeFileSync(geometry, JSON.stringify(SMALL_LITE));
    paths.model = await makeCheckpoint(join(tmp.path, 'model'), geometry, 1);
    const replays = importBenchReplays(esft.dir, tmp.path);
    paths.translation = replays[1].path;
    const c = replays[1].corpus;
    paths.predictor = join(tmp.path, 'predictor');
    writeRandomPredictor(paths.predictor, { moeLayers: c.moeLayers, numExperts: c.numExperts, topK: c.topK }, 1, { hidden: [256], seed: 9 });
  }, 120_000);
  afterAll(() => tmp.cleanup());

  for (const { budget, minProb } of [{ budget: 6, minProb: 0 }, { budget: 8, minProb: 0.5 }]) {
    it(`budget ${budget}, min prob ${minProb}, lru 16 slots, batch 4: prefetch counts and hits equal`, async () => {
      const out = join(tmp.path, `rec-${budget}-${minProb}.arrow`);
      const r = await recordTrace({
        model: paths.model, dataset: 'builtin', batch: 4, promptLen: 24, gen: 8, sequences: 8, quiet: true, out,
        routing: paths.translation, cache: { slotsPerLayer: 16, policy: 'lru' },
        prefetch: { name: 'predicted', predictor: paths.predictor, predictorBudget: budget, ...(minProb > 0 ? { predictorMinProb: minProb } : {}) },
      });
      const corpus = toSequences(readTrace(out));
      annotateCorpus(corpus, paths.predictor, budget, { minProbability: minProb });
      const { schedule, sets } = prepareReplay(corpus, 4);
      const caches = makeLayerCaches(sets, 'lru', 16);
      const plan = buildPrefetchPlan('predicted', corpus, schedule, sets);
      const t = simulateTiming({ schedule, sets, caches, costs: new Costs(defaultCalibration()), miss: 'fetch', prefetch: plan, denseLayers: 1 });
      const pf = r.cache!.prefetch!;
      expect(pf.issued).toBeGreaterThan(100);
      expect({ issued: pf.issued, useful: pf.useful, dropped: pf.dropped, needed: pf.needed }).toEqual(t.prefetch);
      expect(r.cache!.hits.reduce((a, b) => a + b, 0)).toBe(t.hits);
      const tokens = corpus.sequences.reduce((n, s) => n + s.length, 0);
      expect(pf.inferPredictions! + pf.prefillInferPredictions!).toBe(tokens * (corpus.moeLayers.length - 1));
    }, 120_000);
  }
});
