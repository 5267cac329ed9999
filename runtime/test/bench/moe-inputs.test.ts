/**
 * Per-expert error on real activations (moe-inputs.ts, expert-fidelity.ts, the addon's per-layer x): on
 * the CPU backend with a tiny checkpoint (2 MoE layers). The captured rows are checked against each
 * sequence's own prefill captured separately (batched and alone agree), and the per-layer errors against
 * quantFidelity run on one layer's rows at a time (the shared-rows path).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { loadNativeAddon } from '../../src/engine/native-binding.js';
import { toNativeConfig, toNativeTensors } from '../../src/engine/native-config.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { captureMoeInputs, evenPick } from '../../src/bench/moe-inputs.js';
import { measureExpertErrors } from '../../src/bench/expert-fidelity.js';
import { tempDir } from '../../../core/test/helpers.js';
import { makeCheckpoint, requireAddonOrSkip } from '../engine/helpers.js';

describe('evenPick', () => {
  it('spreads the picks over the candidates, middle of each part; refuses too few or a bad count', () => {
    expect(evenPick(10, 5)).toEqual([1, 3, 5, 7, 9]);
    expect(evenPick(4, 4)).toEqual([0, 1, 2, 3]);
    expect(evenPick(7, 1)).toEqual([3]);
    expect(() => evenPick(3, 4)).toThrow(/4 rows asked of only 3/);
    expect(() => evenPick(3, 0)).toThrow(/positive integer/);
  });
});

const ready = requireAddonOrSkip('per-expert error on real activations');

describe.skipIf(!ready)('per-expert error on real activations', () => {
  const tmp = tempDir('moe-inputs-');
  let model: string;
  const seqs = [
    [500, 3, 14, 15, 92, 65],
    [500, 7, 8, 9, 10, 11],
  ];
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'model'), 'tiny-a', 5);
  });
  afterAll(() => tmp.cleanup());

  it('captures each MoE layer\'s input rows, leaving out position 0, as each sequence alone gives them', async () => {
    const eng = await Engine.load(model, { threads: 2 });
    try {
      const H = eng.config.hiddenSize;
      const got = await captureMoeInputs(eng, seqs, 4);
      expect(got.layers).toBe(2);
      expect(got.candidates).toBe(10);
      expect(got.x.length).toBe(2 * 4 * H);
      // candidates are rows 1-5 and 7-11 of the batched forward; picks 1, 3, 6, 8 of them: (s0, p2), (s0, p4), (s1, p2), (s1, p4)
      const where = [[0, 2], [0, 4], [1, 2], [1, 4]];
      for (let s = 0; s < 2; s++) {
        eng.setDebugCapture(['ffn_norm']);
        await eng.score([seqs[s]]);
        const alone = eng.takeDebugCapture().filter((c) => c.name === 'ffn_norm' && c.layer >= 1).sort((a, b) => a.layer - b.layer);
        eng.setDebugCapture(null);
        expect(alone).toHaveLength(2);
        where.forEach(([ws, p], j) => {
          if (ws !== s) return;
          for (let li = 0; li < 2; li++) {
            const a = Array.from(got.x.subarray((li * 4 + j) * H, (li * 4 + j + 1) * H));
            const b = Array.from(alone[li].data.subarray(p * H, (p + 1) * H));
            a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 4));
          }
        });
      }
      // The capture is left off: a later forward records nothing.
      await eng.score([seqs[0]]);
      expect(eng.takeDebugCapture()).toHaveLength(0);
      await expect(captureMoeInputs(eng, [[500, 1]], 2)).rejects.toThrow(/2 rows asked of only 1/);
    } finally {
      eng.close();
    }
  });

  it('per-layer rows: each layer\'s errors are those of quantFidelity on that layer\'s rows alone; a wrong length is refused', async () => {
    const eng = await Engine.load(model, { threads: 2 });
    let given;
    try {
      given = await captureMoeInputs(eng, seqs, 4);
    } finally {
      eng.close();
    }
    const [run] = await measureExpertErrors(model, [{ dtype: 'int8', group: 64 }], { rows: 4, seed: 1, threads: 2 }, () => {}, given);
    expect(run.activations).toBe('run');
    expect(run.distribution!.rows).toBe(4);
    expect(run.errors).toHaveLength(2 * 8);
    const [random] = await measureExpertErrors(model, [{ dtype: 'int8', group: 64 }], { rows: 4, seed: 1, threads: 2 }, () => {});
    expect(random.activations).toBe('random');
    expect(random.errors).not.toEqual(run.errors);

    const fidelity = (loadNativeAddon() as unknown as { quantFidelity: (o: object) => Promise<{ errors: Float64Array }> }).quantFidelity;
    const ckpt = openCheckpoint(model);
    const base = { config: toNativeConfig(ckpt.config), tensors: toNativeTensors(ckpt), dtype: 'int8', group: 64, rows: 4, seed: 1, threads: 2 };
    const H = ckpt.config.hiddenSize;
    for (let li = 0; li < 2; li++) {
      const one = await fidelity({ ...base, x: given.x.slice(li * 4 * H, (li + 1) * 4 * H) });
      expect(run.errors!.slice(li * 8, (li + 1) * 8)).toEqual(Array.from(one.errors).slice(li * 8, (li + 1) * 8));
    }
    expect(() => fidelity({ ...base, x: new Float32Array(3 * 4 * H) })).toThrow(/x has 768 values, expected rows \* hidden_size = 256 .* or MoE layers \* rows \* hidden_size = 512/);
  });
});
