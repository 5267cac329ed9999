/**
 * Issue 6 invariants on the CPU engine (the expert cache as an accounting layer):
 *  - on the same routing (replayed from a trace), the runtime's hits and requests per MoE layer equal the
 *    simulator's canonical replay (same batch, cache size and policy, no prefetch) for lru and lfu (and the
 *    other policies, belady included, since the runtime implements them too);
 *  - generated tokens are identical (same seed) with no cache and with every cache size and policy.
 * Alignment: the simulator's step is one token per lane; the engine's decode forward is one such step and
 * its prefill forward is split into one cache step per position (runtime/src/offload/README.md). The trace
 * the replay run records holds exactly the tokens the engine processed, so the simulator replays that.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import { replayCorpus } from '../../../sim/src/replay/replay-corpus.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { Engine } from '../../src/engine/index.js';
import { recordTrace } from '../../src/record/recorder.js';
import { requireAddonOrSkip } from '../engine/helpers.js';
import { twinRecording, twinSourceTrace, TWIN_SHAPE } from '../helpers/twin-trace.js';

const ready = requireAddonOrSkip('runtime vs simulator cache tests');

describe.skipIf(!ready)('runtime expert cache = simulator', () => {
  const { tmp, paths } = twinSourceTrace('runtime-vs-sim-');
  const { B } = TWIN_SHAPE;

  const policies: PolicyName[] = ['lru', 'lfu', 'fifo', 'lfru', 'static', 'belady', 'opt'];
  for (const policy of policies) {
    for (const C of [1, 3, 6]) {
      it(`${policy}, ${C} slots, batch ${B}: per-layer hits and requests equal the simulator's`, async () => {
        const out = join(tmp.path, `replay-${policy}-${C}.arrow`);
        const r = await recordTrace({ ...twinRecording(paths.model), out, routing: paths.source, cache: { slotsPerLayer: C, policy } });
        const replayed = readTrace(out);
        const original = readTrace(paths.source);
        // the replay followed the source trace's routing
        expect(replayed.meta.routingSource).toBe('replay');
        expect(Array.from(replayed.experts)).toEqual(Array.from(original.experts));
        const corpus = toSequences(replayed);
        const sim = replayCorpus(corpus, { policy, cacheSize: C, batch: B });
        expect(r.cache!.requests).toEqual(Array.from(sim.layerRequests));
        expect(r.cache!.hits).toEqual(Array.from(sim.layerHits));
        // the trace's per-(step, layer) hits/misses add up to the same totals
        const L = replayed.meta.moeLayers.length;
        const hits = new Array<number>(L).fill(0);
        const seen = new Set<string>();
        for (let i = 0; i < replayed.rows; i++) {
          const key = `${replayed.step[i]}/${replayed.layer[i]}`;
          if (seen.has(key)) continue;
          seen.add(key);
          hits[replayed.meta.moeLayers.indexOf(replayed.layer[i])] += replayed.hits![i];
        }
        expect(hits).toEqual(Array.from(sim.layerHits));
      });
    }
  }

  it('generated tokens are identical (seeded sampling) with no cache and every cache size and policy', async () => {
    const prompts = [[1, 5, 9, 2, 7], [3, 3, 8, 1, 4]];
    const sampling = { temperature: 0.8, seed: 42 };
    const run = async (cache?: { slotsPerLayer: number; policy: PolicyName }) => {
      const e = await Engine.load(paths.model, cache ? { cache } : undefined);
      try {
        return (await e.generateAll({ prompts, maxNewTokens: 6, sampling, stopOnEos: false })).tokens;
      } finally {
        e.close();
      }
    };
    const reference = await run();
    for (const policy of ['lru', 'lfu', 'fifo', 'lfru'] as PolicyName[]) {
      for (const C of [1, 2, 4, 8]) expect(await run({ slotsPerLayer: C, policy }), `${policy} C=${C}`).toEqual(reference);
    }
  });
});
