/**
 * Engine.score (teacher forcing) with an offloading session attached (OffloadSession::score): each
 * forward's rows reach the offload controller as generate()'s do, so routing replay applies and the
 * cache counts the requests. Checked on the CPU backend against generate() under the same replay: the
 * teacher-forced logits of the generated tokens equal the generation's own, step for step (same kernels,
 * same rows per forward), the cache sees the same requests, and the logits differ from the model's own
 * routing (the replay was applied).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import type { RoutingReplay } from '../../src/offload/routing-replay.js';
import { tempDir } from '../../../core/test/helpers.js';
import { checkpointWithForeignReplay, requireAddonOrSkip } from './helpers.js';

const ready = requireAddonOrSkip('score with an offloading session');

describe.skipIf(!ready)('score with an offloading session', () => {
  const tmp = tempDir('moe-score-offload-');
  let model: string;
  let replay: RoutingReplay;
  const prompts = [
    [500, 3, 14, 15, 92],
    [7, 8, 9, 10, 11],
  ];
  const N = 4;

  beforeAll(async () => {
    ({ model, replay } = await checkpointWithForeignReplay(tmp.path, 2));
  });
  afterAll(() => tmp.cleanup());

  const totalRequests = (e: Engine) => e.cacheStats()!.requests.reduce((n, r) => n + r, 0);
  const offloaded = () => Engine.load(model, { threads: 2, routing: replay, cache: { slotsPerLayer: 2, policy: 'lru' } });

  it('teacher-forced logits under replay equal the replayed generation\'s, prefill and decode steps', async () => {
    const gen = await offloaded();
    let tokens: number[][];
    let stepLogits: Float32Array[][];
    let genRequests: number;
    try {
      tokens = (await gen.generateAll({ prompts, maxNewTokens: N, stopOnEos: false, recordLogits: true })).tokens;
      stepLogits = gen.logits!.perSequence;
      genRequests = totalRequests(gen);
    } finally {
      gen.close();
    }
    const forced = prompts.map((p, s) => [...p, ...tokens[s].slice(0, N - 1)]);
    const P = prompts[0].length;

    const eng = await offloaded();
    let scored: Float32Array;
    let requests: number;
    try {
      scored = await eng.score(forced, P);
      requests = totalRequests(eng);
    } finally {
      eng.close();
    }
    const plain = await Engine.load(model, { threads: 2 });
    let own: Float32Array;
    try {
      own = await plain.score(forced, P);
    } finally {
      plain.close();
    }
    const V = scored.length / forced.reduce((n, f) => n + f.length, 0);
    const row = (all: Float32Array, s: number, i: number) => all.slice((s * forced[0].length + i) * V, (s * forced[0].length + i + 1) * V);
    for (let s = 0; s < prompts.length; s++) {
      // generation step k's logits are those of position P - 1 + k (step 0 from the prefill forward)
      for (let k = 0; k < N; k++) expect(row(scored, s, P - 1 + k)).toEqual(stepLogits[s][k]);
    }
    expect(row(own, 0, P)).not.toEqual(row(scored, 0, P)); // the model's own routing differs: the replay was applied
    // the same rows in the same forwards as the generation: the cache saw the same requests
    expect(requests).toBe(genRequests);
    expect(requests).toBeGreaterThan(0);
  });
});
