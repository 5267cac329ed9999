/**
 * Continuous batching (Engine.openBatch): sequences joining (their prefill beside the others' decode
 * rows) and leaving between steps produce exactly the tokens each prompt produces alone, greedy and
 * seeded; slots are reused; misuse is refused by name. Tiny synthetic checkpoint on the CPU.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type ContinuousBatch, type Sampling } from '../../src/engine/index.js';
import { tempDir } from '../../../core/test/helpers.js';
import { makeCheckpoint, requireAddonOrSkip } from './helpers.js';

const ready = requireAddonOrSkip('continuous batching');

describe.skipIf(!ready)('continuous batching', () => {
  const tmp = tempDir('moe-continuous-');
  let engine: Engine;
  const prompts = [
    [500, 3, 14, 15, 92],
    [7, 8],
    [400, 401, 402, 403, 404, 405, 406, 407, 408],
    [11],
    [300, 200, 100, 50],
  ];
  const N = 7;

  beforeAll(async () => {
    engine = await Engine.load(await makeCheckpoint(join(tmp.path, 'ckpt'), 'tiny-b', 11), { threads: 2 });
  });
  afterAll(() => {
    engine?.close();
    tmp.cleanup();
  });

  const alone = async (prompt: number[], sampling: Sampling = 'greedy', n = N) =>
    (await engine.generateAll({ prompts: [prompt], maxNewTokens: n, stopOnEos: false, sampling })).tokens[0];

  /** Runs a schedule: at step k (before it), `joins[k]` sequences are added and `leaves[k]` removed by name. */
  async function drive(
    batch: ContinuousBatch,
    joins: Record<number, { name: string; prompt: number[]; sampling?: Sampling; n?: number }[]>,
    leaves: Record<number, string[]> = {},
  ): Promise<Map<string, number[]>> {
    const got = new Map<string, number[]>();
    const slotOf = new Map<string, number>();
    const nameOf = new Map<number, string>();
    for (let k = 0; k < 100; k++) {
      for (const name of leaves[k] ?? []) {
        batch.remove(slotOf.get(name)!);
        nameOf.delete(slotOf.get(name)!);
      }
      for (const j of joins[k] ?? []) {
        const slot = batch.add({ prompt: j.prompt, maxNewTokens: j.n ?? N, stopOnEos: false, sampling: j.sampling });
        slotOf.set(j.name, slot);
        nameOf.set(slot, j.name);
        got.set(j.name, []);
      }
      if (batch.running === 0 && Object.keys(joins).every((s) => Number(s) <= k)) break;
      if (batch.running === 0) continue;
      for (const t of await batch.step()) {
        got.get(nameOf.get(t.slot)!)!.push(t.token);
        if (t.finished) {
          batch.remove(t.slot);
          nameOf.delete(t.slot);
        }
      }
    }
    return got;
  }

  it('gives every sequence the tokens of its prompt generated alone, with sequences joining and leaving', async () => {
    const wantSeq: number[][] = [];
    for (const p of prompts) wantSeq.push(await alone(p));
    const wantB = (await alone(prompts[1], 'greedy', 20)).slice(0, 4);

    const batch = await engine.openBatch({ slots: 3, capacity: 32 });
    try {
      const got = await drive(
        batch,
        {
          0: [{ name: 'a', prompt: prompts[0] }, { name: 'b', prompt: prompts[1], n: 20 }],
          2: [{ name: 'c', prompt: prompts[2] }], // prefilled beside a's and b's decode rows
          4: [{ name: 'd', prompt: prompts[3] }], // takes b's slot, freed the step before
          9: [{ name: 'e', prompt: prompts[4] }], // joins when a and c have left
        },
        { 4: ['b'] }, // b leaves mid-way
      );
      expect(got.get('a')).toEqual(wantSeq[0]);
      expect(got.get('b')).toEqual(wantB);
      expect(got.get('c')).toEqual(wantSeq[2]);
      expect(got.get('d')).toEqual(wantSeq[3]);
      expect(got.get('e')).toEqual(wantSeq[4]);
    } finally {
      batch.close();
    }
  });

  it('keeps each sequence\'s own sampling parameters and seed', async () => {
    const s1: Sampling = { temperature: 0.9, topP: 0.95, seed: 42 };
    const s2: Sampling = { temperature: 1.3, seed: 7 };
    const want1 = await alone(prompts[0], s1);
    const want2 = await alone(prompts[2], s2);
    const wantG = await alone(prompts[1]);
    const batch = await engine.openBatch({ slots: 4, capacity: 32 });
    try {
      const got = await drive(batch, {
        0: [{ name: 'g', prompt: prompts[1] }, { name: 's1', prompt: prompts[0], sampling: s1 }],
        3: [{ name: 's2', prompt: prompts[2], sampling: s2 }],
      });
      expect(got.get('s1')).toEqual(want1);
      expect(got.get('s2')).toEqual(want2);
      expect(got.get('g')).toEqual(wantG);
    } finally {
      batch.close();
    }
  });

  it('refuses misuse by name, and generate() works again once the batch is closed', async () => {
    const batch = await engine.openBatch({ slots: 2, capacity: 10 });
    await expect(batch.step()).rejects.toThrow(/no sequence is running/);
    expect(() => batch.add({ prompt: [1, 2, 3, 4, 5, 6, 7, 8], maxNewTokens: 4 })).toThrow(/prompt of 8 tokens plus 4 new tokens exceeds the slot capacity of 10 tokens/);
    expect(() => batch.add({ prompt: [1, 99999], maxNewTokens: 2 })).toThrow(/token id 99999 is outside the vocabulary/);
    expect(() => batch.add({ prompt: [1], maxNewTokens: 0 })).toThrow(/maxNewTokens/);
    batch.add({ prompt: [1, 2], maxNewTokens: 3 });
    batch.add({ prompt: [3], maxNewTokens: 3 });
    expect(() => batch.add({ prompt: [4], maxNewTokens: 3 })).toThrow(/all 2 slots are in use/);
    expect(() => batch.remove(5)).toThrow(/slot 5 holds no sequence/);
    await expect(engine.generateAll({ prompts: [[1]], maxNewTokens: 2 })).rejects.toThrow(/open continuous batch/);
    const pending = batch.step();
    expect(() => batch.add({ prompt: [4], maxNewTokens: 3 })).toThrow(/a step is in progress/);
    await pending;
    batch.close();
    await expect(engine.openBatch({ slots: 0, capacity: 10 })).rejects.toThrow(/openBatch slots/);
    expect((await engine.generateAll({ prompts: [prompts[0]], maxNewTokens: N, stopOnEos: false })).tokens[0]).toEqual(await alone(prompts[0]));
  });
});
