/**
 * Continuous batching with offloading attached (the server's --routing): the addon tells the offload
 * controller each forward's rows itself, slot -> trace sequence. A sequence added with trace sequence
 * g produces exactly what `generate --routing` produces for a prompt that replays sequence g, while
 * other sequences join and leave beside it; the cache counts requests. The trace comes from a model of
 * the same geometry but another seed, so its routing differs from the model's own (checked).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import type { RoutingReplay } from '../../src/offload/routing-replay.js';
import { tempDir } from '../../../core/test/helpers.js';
import { checkpointWithForeignReplay, requireAddonOrSkip } from './helpers.js';

const ready = requireAddonOrSkip('continuous batching with routing replay');

describe.skipIf(!ready)('continuous batching with routing replay', () => {
  const tmp = tempDir('moe-continuous-routing-');
  let model: string;
  let replay: RoutingReplay;
  const prompts = [
    [500, 3, 14, 15, 92],
    [7, 8, 9],
    [400, 401, 402, 403],
  ];
  const N = 5;

  beforeAll(async () => {
    ({ model, replay } = await checkpointWithForeignReplay(tmp.path, 3));
  });
  afterAll(() => tmp.cleanup());

  /** generate --routing with prompt p replaying trace sequence g (earlier prompts take 0..g-1). */
  async function generated(g: number, p: number[]): Promise<number[]> {
    const engine = await Engine.load(model, { threads: 2, routing: replay, cache: { slotsPerLayer: 2, policy: 'lru' } });
    try {
      const filler = Array.from({ length: g }, () => [1]);
      const r = await engine.generateAll({ prompts: [...filler, p], maxNewTokens: N, stopOnEos: false });
      return r.tokens[g];
    } finally {
      engine.close();
    }
  }

  it('replays each slot\'s trace sequence, whatever joins and leaves beside it', async () => {
    const want = [await generated(0, prompts[0]), await generated(2, prompts[1]), await generated(1, prompts[2])];
    const plain = await Engine.load(model, { threads: 2 });
    const own = (await plain.generateAll({ prompts: [prompts[0]], maxNewTokens: N, stopOnEos: false })).tokens[0];
    plain.close();
    expect(want[0]).not.toEqual(own); // the replay changes the result: the test can tell it was applied

    const engine = await Engine.load(model, { threads: 2, routing: replay, cache: { slotsPerLayer: 2, policy: 'lru' } });
    try {
      const batch = await engine.openBatch({ slots: 2, capacity: 16 });
      const got: number[][] = [[], [], []];
      const who = new Map<number, number>();
      who.set(batch.add({ prompt: prompts[0], maxNewTokens: N, stopOnEos: false, traceSequence: 0 }), 0);
      for (let step = 0; batch.running > 0; step++) {
        if (step === 1) who.set(batch.add({ prompt: prompts[1], maxNewTokens: N, stopOnEos: false, traceSequence: 2 }), 1);
        for (const t of await batch.step()) {
          const i = who.get(t.slot)!;
          got[i].push(t.token);
          if (t.finished) {
            batch.remove(t.slot);
            who.delete(t.slot);
            if (i === 0) who.set(batch.add({ prompt: prompts[2], maxNewTokens: N, stopOnEos: false, traceSequence: 1 }), 2);
          }
        }
      }
      expect(got).toEqual(want);
      batch.close();
      const stats = engine.cacheStats()!;
      expect(stats.requests.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    } finally {
      engine.close();
    }
  });
});
