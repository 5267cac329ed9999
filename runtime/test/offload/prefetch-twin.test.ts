/**
 * Issue 12 prefetch: the runtime's prefetch decisions (native OffloadController, prefetch_decisions.cpp)
 * equal the simulator's (sim/src/timing/engine.ts issuePrefetch) on the same trace: per-layer hits and
 * requests, and the prefetches issued, useful, dropped and needed, for oracle (lookahead 1 and 2, under
 * routing replay), next-gate (the model's own routing; the simulator reads the recorded gate_next
 * column, the runtime computes the same gate on the CPU engine) and predicted (the runtime runs its C++
 * port of the predictor in-line, the simulator reads predictions the TypeScript inference made beforehand:
 * equal decisions mean equal ids). The decisions do not depend on timing,
 * so the CPU engine (the controller without a GPU) checks them; the CUDA backend executes the same orders.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeLayerCaches } from '../../../sim/src/cache/replay.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { buildPrefetchPlan, type PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { prepareReplay, staticPinned } from '../../../sim/src/replay/replay-corpus.js';
import { simulateTiming } from '../../../sim/src/timing/engine.js';
import { annotateCorpus } from '../../../predictor/src/annotate.js';
import { writeRandomPredictor } from '../../../predictor/test/fixtures.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences, type RoutingCorpus } from '../../../traces/src/sequences.js';
import { recordTrace } from '../../src/record/recorder.js';
import { requireAddonOrSkip } from '../engine/helpers.js';
import { twinRecording, twinSourceTrace, TWIN_SHAPE } from '../helpers/twin-trace.js';

const ready = requireAddonOrSkip('prefetch twin tests');

function simulate(corpus: RoutingCorpus, policy: PolicyName, C: number, batch: number, prefetch: PrefetchName, lookahead: number) {
  // predicted: the plan reads corpus.predictions (annotateCorpus; the lookahead is the predictor's).
  const { schedule, sets } = prepareReplay(corpus, batch);
  const pinned = policy === 'static' ? staticPinned(corpus, C).pinned : undefined;
  const caches = makeLayerCaches(sets, policy, C, { pinned });
  const plan = buildPrefetchPlan(prefetch, corpus, schedule, sets, { oracleLookahead: lookahead });
  const t = simulateTiming({ schedule, sets, caches, costs: new Costs(defaultCalibration()), miss: 'fetch', prefetch: plan, denseLayers: corpus.meta.numLayers - corpus.moeLayers.length });
  const L = corpus.moeLayers.length;
  return { t, L };
}

describe.skipIf(!ready)('runtime prefetch decisions = simulator', () => {
  const { tmp, paths } = twinSourceTrace('prefetch-twin-');
  const { B } = TWIN_SHAPE;

  const cases: Array<{ prefetch: PrefetchName; lookahead: number; policies: PolicyName[] }> = [
    { prefetch: 'oracle', lookahead: 1, policies: ['lru', 'lfu', 'fifo', 'lfru', 'static', 'belady', 'opt'] },
    { prefetch: 'oracle', lookahead: 2, policies: ['lru', 'lfu'] },
    { prefetch: 'next-gate', lookahead: 1, policies: ['lru', 'lfu', 'fifo', 'lfru'] },
  ];
  for (const { prefetch, lookahead, policies } of cases) {
    for (const policy of policies) {
      for (const C of [1, 3, 6]) {
        it(`${prefetch} (lookahead ${lookahead}), ${policy}, ${C} slots, batch ${B}: hits and prefetch counts equal the simulator's`, async () => {
          const out = join(tmp.path, `pf-${prefetch}-${lookahead}-${policy}-${C}.arrow`);
          const replay = prefetch === 'oracle';
          const r = await recordTrace({
            ...twinRecording(paths.model), out,
            routing: replay ? paths.source : undefined,
            cache: { slotsPerLayer: C, policy },
            prefetch: { name: prefetch, ...(prefetch === 'oracle' ? { lookahead } : {}) },
          });
          const corpus = toSequences(readTrace(out));
          const { t } = simulate(corpus, policy, C, B, prefetch, lookahead);
          const pf = r.cache!.prefetch!;
          expect(pf).toBeDefined();
          // something happened (a test that cannot fail would compare zeros)
          expect(pf.issued + pf.dropped).toBeGreaterThan(0);
          expect({ issued: pf.issued, useful: pf.useful, dropped: pf.dropped, needed: pf.needed }).toEqual(t.prefetch);
          expect(r.cache!.hits.reduce((a, b) => a + b, 0)).toBe(t.hits);
          expect(r.cache!.requests.reduce((a, b) => a + b, 0)).toBe(t.requests);
          // counter arithmetic: useful <= issued, useful <= needed, needed <= requests
          expect(pf.useful).toBeLessThanOrEqual(pf.issued);
          expect(pf.useful).toBeLessThanOrEqual(pf.needed);
          expect(pf.needed).toBeLessThanOrEqual(t.requests);
        });
      }
    }
  }

  // predicted: a seeded random predictor for the fixture's geometry (decisions, not accuracy, are compared);
  // budgets 3-5 with and without a confidence gate (the fixture has 2 MoE layers: lookahead 1 only).
  const predictedCases: Array<{ lookahead: number; budget: number; minProb: number; policy: PolicyName; C: number }> = [
    { lookahead: 1, budget: 3, minProb: 0, policy: 'lru', C: 3 },
    { lookahead: 1, budget: 3, minProb: 0, policy: 'lfu', C: 6 },
    { lookahead: 1, budget: 5, minProb: 0, policy: 'lfru', C: 1 },
    { lookahead: 1, budget: 4, minProb: 0.5, policy: 'fifo', C: 3 },
  ];
  for (const { lookahead, budget, minProb, policy, C } of predictedCases) {
    it(`predicted in-line (lookahead ${lookahead}, budget ${budget}, min prob ${minProb}), ${policy}, ${C} slots: equal to the simulator on the TypeScript predictions`, async () => {
      const source = toSequences(readTrace(paths.source));
      const dir = join(tmp.path, `pred-k${lookahead}`);
      if (!existsSync(dir)) writeRandomPredictor(dir, { moeLayers: source.moeLayers, numExperts: source.numExperts, topK: source.topK }, lookahead, { hidden: [16], seed: 3 + lookahead });
      const out = join(tmp.path, `pf-predicted-${lookahead}-${budget}-${minProb}-${policy}-${C}.arrow`);
      const r = await recordTrace({
        ...twinRecording(paths.model), out, routing: paths.source,
        cache: { slotsPerLayer: C, policy },
        prefetch: { name: 'predicted', predictor: dir, predictorBudget: budget, ...(minProb > 0 ? { predictorMinProb: minProb } : {}) },
      });
      const corpus = toSequences(readTrace(out));
      annotateCorpus(corpus, dir, budget, { minProbability: minProb });
      const { t } = simulate(corpus, policy, C, B, 'predicted', lookahead);
      const pf = r.cache!.prefetch!;
      expect(pf.issued + pf.dropped).toBeGreaterThan(0);
      expect({ issued: pf.issued, useful: pf.useful, dropped: pf.dropped, needed: pf.needed }).toEqual(t.prefetch);
      expect(r.cache!.hits.reduce((a, b) => a + b, 0)).toBe(t.hits);
      // the predictor ran in the runtime: one prediction per (token, MoE layer with a layer k ahead)
      const L = corpus.moeLayers.length;
      const tokens = corpus.sequences.reduce((n, q) => n + q.length, 0);
      expect(pf.inferPredictions! + pf.prefillInferPredictions!).toBe(tokens * (L - lookahead));
      expect(pf.inferPredictions).toBeGreaterThan(0);
      expect(pf.prefillInferPredictions).toBeGreaterThan(0);
      expect(pf.inferUs).toBeGreaterThan(0);
    });
  }

  it('the gate leaves experts out: predicted with min prob 0.9 issues fewer prefetches than without', async () => {
    const source = toSequences(readTrace(paths.source));
    const dir = join(tmp.path, 'pred-gate');
    writeRandomPredictor(dir, { moeLayers: source.moeLayers, numExperts: source.numExperts, topK: source.topK }, 1, { hidden: [16], seed: 4 });
    const run = async (minProb: number) => (await recordTrace({
      ...twinRecording(paths.model), out: join(tmp.path, `gate-${minProb}.arrow`), routing: paths.source,
      cache: { slotsPerLayer: 3, policy: 'lru' }, prefetch: { name: 'predicted', predictor: dir, predictorBudget: 4, predictorMinProb: minProb },
    })).cache!.prefetch!;
    const all = await run(0);
    const gated = await run(0.9);
    expect(gated.issued + gated.dropped + gated.alreadyCached).toBeLessThan(all.issued + all.dropped + all.alreadyCached);
  });

  it('prefetch changes the cache: oracle at 3 slots hits more than no prefetch', async () => {
    const a = await recordTrace({ ...twinRecording(paths.model), out: join(tmp.path, 'np.arrow'), routing: paths.source, cache: { slotsPerLayer: 3, policy: 'lru' } });
    const b = await recordTrace({ ...twinRecording(paths.model), out: join(tmp.path, 'or.arrow'), routing: paths.source, cache: { slotsPerLayer: 3, policy: 'lru' }, prefetch: { name: 'oracle' } });
    const sum = (x: number[]) => x.reduce((p, q) => p + q, 0);
    expect(sum(b.cache!.hits)).toBeGreaterThan(sum(a.cache!.hits));
  });
});
