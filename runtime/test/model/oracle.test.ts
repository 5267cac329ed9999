import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { TINY_VARIANTS } from '../../src/model/synth/geometries.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { pythonBin, repoRoot, requirePythonOrSkip, tempDir } from '../../../core/test/helpers.js';
import { makeTiny } from './fixtures.js';

/**
 * The same synthetic checkpoints, opened by openCheckpoint and by transformers through the oracle:
 * both must see the same tensors, transformers must run them with sane numbers and non-degenerate
 * routing, and the oracle's output must have the documented shape. (The engine-vs-oracle logits
 * comparison lives with the engine.) Skipped with a message when .venv lacks torch/transformers,
 * except under CI=true, where that is a failure.
 */
const hasPython = requirePythonOrSkip('oracle tests', 'torch', 'transformers', 'safetensors');
const oracle = join(repoRoot, 'tools', 'oracle');

function py(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(pythonBin, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, TOKENIZERS_PARALLELISM: 'false' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!hasPython)('checkpoints in the transformers oracle', () => {
  const d = tempDir();
  afterAll(() => d.cleanup());

  it('every tiny geometry: same tensors, weights verified after load, finite logits, routing not degenerate', async () => {
    const dirs = await Promise.all(TINY_VARIANTS.map((v) => makeTiny(join(d.path, v), v, 11)));
    const check = py([join(oracle, 'check_synthetic.py'), '--model', ...dirs]);
    expect(check.status, check.stderr).toBe(0);
    const summaries = JSON.parse(check.stdout);
    expect(summaries).toHaveLength(TINY_VARIANTS.length);
    dirs.forEach((dir, i) => {
      const ckpt = openCheckpoint(dir);
      const s = summaries[i];
      expect(s.model).toBe(dir);
      expect(s.weights_verified.tensors_checked).toBe(ckpt.tensors.size);
      expect(s.swap_detected).toBe(true);
      expect(s.routers_patched).toBe(ckpt.config.normTopkProb ? ckpt.config.moeLayers.length : 0);
      expect(Object.keys(s.routing).map(Number)).toEqual(ckpt.config.moeLayers);
      console.log(`[oracle] ${TINY_VARIANTS[i]}: logits std ${s.logits_std.toFixed(3)}, routing ${JSON.stringify(s.routing)}`);
    });
  });

  // The output format on two geometries (q_proj and q LoRA); the engine's comparison tests run all four.
  for (const variant of ['tiny-a', 'tiny-d']) {
    it(`${variant}: dump_logits writes the documented output`, async () => {
      const dir = await makeTiny(join(d.path, `${variant}-dump`), variant, 11);
      const ckpt = openCheckpoint(dir);
      const inputs = join(d.path, `${variant}-prompts.json`);
      const prompts = [[ckpt.config.bosTokenId, 72, 105, 10], [5, 6, 7, 8, 9, 10, 11]];
      writeFileSync(inputs, JSON.stringify(prompts));
      const out = join(d.path, `${variant}-oracle.json`);
      const dump = py([join(oracle, 'dump_logits.py'), '--model', dir, '--inputs', inputs, '--max-new-tokens', '3', '--out', out, '--hidden-states', '--no-stop-at-eos']);
      expect(dump.status, dump.stderr).toBe(0);
      const doc = JSON.parse(readFileSync(out, 'utf8'));
      expect(doc.config_sha256).toBe(ckpt.configHash);
      expect(doc.weights_verified.tensors_checked).toBe(ckpt.tensors.size);
      expect(doc.results).toHaveLength(2);
      doc.results.forEach((r: any, i: number) => {
        expect(r.prompt).toEqual(prompts[i]);
        expect(r.tokens).toHaveLength(3);
        expect(r.logits).toHaveLength(3);
        r.logits.forEach((row: number[], k: number) => {
          expect(row).toHaveLength(ckpt.config.vocabSize);
          expect(row.indexOf(Math.max(...row))).toBe(r.tokens[k]);
        });
        expect(r.hidden_states.layers).toHaveLength(ckpt.config.numHiddenLayers);
        expect(r.hidden_states.embed).toHaveLength(prompts[i].length);
        expect(r.hidden_states.final_norm[0]).toHaveLength(ckpt.config.hiddenSize);
      });
    });
  }

  it('the oracle refuses prompts outside the vocabulary', async () => {
    const dir = await makeTiny(join(d.path, 'refuse'), 'tiny-a', 2);
    const inputs = join(d.path, 'bad-prompts.json');
    writeFileSync(inputs, JSON.stringify([[1, 2, 512]]));
    const r = py([join(oracle, 'dump_logits.py'), '--model', dir, '--inputs', inputs, '--max-new-tokens', '1', '--out', join(d.path, 'x.json')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/prompt 0 must be a non-empty list of token ids in \[0, 512\)/);
  });

  it('our tokenizer encodes like the Rust tokenizers library', async () => {
    const dir = await makeTiny(join(d.path, 'tok'), 'tiny-b', 2);
    const texts = ['Hello world!', 'The experts are offloaded: 2048 tokens.', 'émoji 😀 中文\n\nAssistant:', '<｜begin▁of▁sentence｜>User: hi\n\n'];
    const r = py(['-c', `import json,sys\nfrom tokenizers import Tokenizer\nt=Tokenizer.from_file(sys.argv[1])\nprint(json.dumps([t.encode(s, add_special_tokens=False).ids for s in json.loads(sys.argv[2])]))`, join(dir, 'tokenizer.json'), JSON.stringify(texts)]);
    expect(r.status, r.stderr).toBe(0);
    const tok = loadTokenizer(dir);
    expect(texts.map((s) => tok.encode(s))).toEqual(JSON.parse(r.stdout));
  });
});
