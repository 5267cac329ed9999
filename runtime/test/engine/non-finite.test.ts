/**
 * Issue 15, item 18: a NaN or Inf in a weight made generate exit 0 with NaN logits and tokens [0,0,0,0].
 * Now the native step refuses non-finite logits and the error names the first non-finite layer output,
 * found with the per-tensor debug hook. One poisoned value per case, in a copy of a tiny checkpoint.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError } from '../../src/engine/index.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { runCli, tempDir } from '../../../core/test/helpers.js';
import { copyDir } from '../model/fixtures.js';
import { makeCheckpoint, requireAddonOrSkip } from './helpers.js';

const ready = requireAddonOrSkip('non-finite logits tests');
const BF16_NAN = 0x7fc0;
const BF16_INF = 0x7f80;

/** Writes one bf16 value over the first element of `tensor` in a copy of `model`. */
function poison(model: string, dir: string, tensor: string, bits: number): string {
  copyDir(model, dir);
  const t = openCheckpoint(dir).tensors.get(tensor);
  if (!t) throw new Error(`no tensor ${tensor}`);
  const fd = openSync(t.file, 'r+');
  const b = Buffer.alloc(2);
  b.writeUInt16LE(bits);
  writeSync(fd, b, 0, 2, t.offset);
  closeSync(fd);
  return dir;
}

describe.skipIf(!ready)('non-finite logits stop generation, naming the first broken layer', () => {
  const tmp = tempDir('non-finite-');
  let model = '';
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 1);
  });
  afterAll(() => tmp.cleanup());

  const cases: Array<[string, string, number, RegExp]> = [
    ['NaN in layer 1 attention', 'model.layers.1.self_attn.kv_a_proj_with_mqa.weight', BF16_NAN, /first non-finite output is layer 1's attention \(model\.layers\.1\.self_attn\.\*\)/],
    ['Inf in layer 2 shared expert', 'model.layers.2.mlp.shared_experts.down_proj.weight', BF16_INF, /first non-finite output is layer 2's MoE block/],
    ['NaN in layer 0 dense MLP', 'model.layers.0.mlp.up_proj.weight', BF16_NAN, /first non-finite output is layer 0's dense MLP \(model\.layers\.0\.mlp\.\*\)/],
    ['NaN in the final norm', 'model.norm.weight', BF16_NAN, /first non-finite output is the final norm \(model\.norm\.weight\)/],
    ['NaN in lm_head', 'lm_head.weight', BF16_NAN, /first non-finite output is the output head \(lm_head\.weight\)/],
  ];
  cases.forEach(([name, tensor, bits, want], i) => {
    it(`${name}: generate fails with a one-line error`, () => {
      const dir = poison(model, join(tmp.path, `p${i}`), tensor, bits);
      const r = runCli(['generate', '--model', dir, '--prompt', 'hello there', '--max-new-tokens', '4', '--json']);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/non-finite logits \(NaN or Inf\) for prompt 0, generated token 1/);
      expect(r.stderr).toMatch(want);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });
  });

  it('the Engine API throws an EngineError, and the engine works again afterwards', async () => {
    const dir = poison(model, join(tmp.path, 'api'), 'model.layers.1.self_attn.o_proj.weight', BF16_NAN);
    const engine = await Engine.load(dir);
    try {
      engine.setDebugCapture(['h']);
      const err = await engine.generateAll({ prompts: [[1, 2, 3]], maxNewTokens: 3 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect((err as Error).message).toMatch(/layer 1's attention/);
      // The caller's own capture is restored after the diagnosis used the hook.
      engine.takeDebugCapture();
      await engine.score([[1, 2]]);
      expect(engine.takeDebugCapture().every((c) => c.name === 'h')).toBe(true);
    } finally {
      engine.close();
    }
    // A healthy checkpoint still generates.
    const ok = await Engine.load(model);
    try {
      const r = await ok.generateAll({ prompts: [[1, 2, 3]], maxNewTokens: 3 });
      expect(r.tokens[0]).toHaveLength(3);
    } finally {
      ok.close();
    }
  });
});
