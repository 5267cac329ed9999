/**
 * Issue 15, items 17 and 18 (model side): hyper-parameters no DeepSeek model uses are refused by name (they
 * passed the type checks and gave NaN or zero logits), every real DeepSeek-V2 / V2-Lite / V3 value passes; a
 * checkpoint file that is not a regular file (a FIFO blocked every command forever) is refused before it is
 * opened. The FIFO cases run the CLI in a child with a time limit, so a regression fails instead of hanging.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelConfig } from '../../src/model/config.js';
import { LITE_CONFIG } from '../../src/model/synth/geometries.js';
import { repoRoot, tempDir } from '../../../core/test/helpers.js';
import { copyDir, makeTiny, shardOf } from './fixtures.js';

const lite = () => structuredClone(LITE_CONFIG) as Record<string, any>;
const parse = (c: Record<string, unknown>) => parseModelConfig(c, 'cfg.json');
const withRope = (edit: Record<string, unknown>) => {
  const c = lite();
  c.rope_scaling = { ...c.rope_scaling, ...edit };
  return c;
};

describe('config ranges (issue 15 item 18)', () => {
  it('every real DeepSeek config passes: V2-Lite, V2 (236B), V3-style scaling', () => {
    expect(() => parse(lite())).not.toThrow();
    // DeepSeek-V2 (the full model): the values of its config.json that differ from Lite's.
    const v2 = {
      ...lite(), hidden_size: 5120, intermediate_size: 12288, moe_intermediate_size: 1536, num_hidden_layers: 60, n_routed_experts: 160,
      n_shared_experts: 2, num_attention_heads: 128, num_key_value_heads: 128, q_lora_rank: 1536, routed_scaling_factor: 16.0,
      topk_method: 'greedy', n_group: 8, topk_group: 3,
    };
    expect(parse(v2).routedScalingFactor).toBe(16);
    expect(parse({ ...lite(), routed_scaling_factor: 2.5, rms_norm_eps: 1e-5 }).rmsNormEps).toBe(1e-5);
    expect(parse(withRope({ mscale: 1, mscale_all_dim: 0 })).ropeScaling?.mscale).toBe(1);
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['rope_theta 1', { ...lite(), rope_theta: 1 }, /unsupported rope_theta = 1: outside \[100, 100000000\]/],
    ['rope_theta 1e-300', { ...lite(), rope_theta: 1e-300 }, /unsupported rope_theta = 1e-300/],
    ['rms_norm_eps 1e300', { ...lite(), rms_norm_eps: 1e300 }, /unsupported rms_norm_eps = 1e\+300/],
    ['routed_scaling_factor 1e300', { ...lite(), routed_scaling_factor: 1e300 }, /unsupported routed_scaling_factor = 1e\+300/],
    ['beta_fast -32', withRope({ beta_fast: -32 }), /unsupported rope_scaling\.beta_fast = -32/],
    ['beta_slow above beta_fast', withRope({ beta_slow: 64 }), /unsupported rope_scaling\.beta_slow = 64: must be below beta_fast/],
    ['mscale 1e300', withRope({ mscale: 1e300, mscale_all_dim: 1e-300 }), /unsupported rope_scaling\.mscale = 1e\+300/],
    ['mscale_all_dim -1', withRope({ mscale_all_dim: -1 }), /unsupported rope_scaling\.mscale_all_dim = -1/],
    ['factor 1e9', withRope({ factor: 1e9 }), /unsupported rope_scaling\.factor = 1000000000/],
    ['original context above the context', withRope({ original_max_position_embeddings: 1 << 20 }), /original_max_position_embeddings = 1048576: must be at most max_position_embeddings/],
  ];
  for (const [name, cfg, want] of bad) {
    it(`refuses ${name}, naming the file and the key`, () => {
      expect(() => parse(cfg)).toThrow(/^cfg\.json: /);
      expect(() => parse(cfg)).toThrow(want);
    });
  }
});

describe('checkpoint files that are not regular files (issue 15 item 17)', () => {
  const tmp = tempDir('fifo-');
  let model = '';
  beforeAll(async () => {
    model = await makeTiny(join(tmp.path, 'tiny'));
  });
  afterAll(() => tmp.cleanup());

  /** A copy of the checkpoint with `file` replaced by a FIFO nobody writes to. */
  function withFifo(name: string, file: string): string {
    const dir = copyDir(model, join(tmp.path, name));
    rmSync(join(dir, file));
    expect(spawnSync('mkfifo', [join(dir, file)]).status).toBe(0);
    return dir;
  }

  const cases: Array<[string, () => string]> = [
    ['config.json', () => 'config.json'],
    ['the shard index', () => 'model.safetensors.index.json'],
    ['a shard', () => shardOf(model, 'model.layers.1.mlp.gate.weight')],
    ['tokenizer.json', () => 'tokenizer.json'],
    ['tokenizer_config.json', () => 'tokenizer_config.json'],
  ];
  for (const [what, file] of cases) {
    it(`a FIFO as ${what}: refused at once, naming it`, () => {
      const f = file();
      const dir = withFifo(what.replace(/\W+/g, '-'), f);
      const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), 'generate', '--model', dir, '--prompt', 'hi', '--max-new-tokens', '2'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.signal, 'timed out: the FIFO was opened').toBeNull();
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(join(dir, f));
      expect(r.stderr).toMatch(/is not a regular file/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }, 90_000);
  }
});
