/**
 * Issue 12 prefetch: the runtime's prefetch decisions (native OffloadController, prefetch_decisions.cpp)
 * equal the simulator's (sim/src/timing/engine.ts issuePrefetch) on the same trace: per-layer hits and
 * requests, and the prefetches issued, useful, dropped and needed, for oracle (lookahead 1 and 2, under
 * routing replay) and next-gate (the model's own routing; the simulator reads the recorded gate_next
 * column, the runtime computes the same gate on the CPU engine). The decisions do not depend on timing,
 * so the CPU engine (the controller without a GPU) checks them; the CUDA backend executes the same orders.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeLayerCaches } from '../../../sim/src/cache/replay.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { buildPrefetchPlan, type PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { prepareReplay, staticPinned } from '../../../sim/src/replay/replay-corpus.js';
import { simulateTiming } from '../../../sim/src/timing/engine.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences, type RoutingCorpus } from '../../../traces/src/sequences.js';
import { recordTrace } from '../../src/record/recorder.js';
import { requireAddonOrSkip } from '../engine/helpers.js';
import { twinRecording, twinSourceTrace, TWIN_SHAPE } from '../helpers/twin-trace.js';

const ready = requireAddonOrSkip('prefetch twin tests');

function simulate(corpus: RoutingCorpus, policy: PolicyName, C: number, batch: number, prefetch: PrefetchName, lookahead: number) {
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

  it('prefetch changes the cache: oracle at 3 slots hits more than no prefetch', async () => {
    const a = await recordTrace({ ...twinRecording(paths.model), out: join(tmp.path, 'np.arrow'), routing: paths.source, cache: { slotsPerLayer: 3, policy: 'lru' } });
    const b = await recordTrace({ ...twinRecording(paths.model), out: join(tmp.path, 'or.arrow'), routing: paths.source, cache: { slotsPerLayer: 3, policy: 'lru' }, prefetch: { name: 'oracle' } });
    const sum = (x: number[]) => x.reduce((p, q) => p + q, 0);
    expect(sum(b.cache!.hits)).toBeGreaterThan(sum(a.cache!.hits));
  });
});
