import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configHash, loadModelConfig, parseModelConfig } from '../../src/model/config.js';
import { LITE_CONFIG, TINY_GEOMETRIES } from '../../src/model/synth/geometries.js';
import { BadInputError } from '../../../core/src/errors.js';
import { tempDir } from '../../../core/test/helpers.js';

const parse = (overrides: Record<string, unknown>) => parseModelConfig({ ...structuredClone(LITE_CONFIG), ...overrides }, 'cfg.json');

describe('config.json of DeepSeek-V2-Lite', () => {
  it('reads every field and derives the layer split', () => {
    const c = parse({});
    expect(c).toMatchObject({
      vocabSize: 102400, hiddenSize: 2048, numHiddenLayers: 27, firstKDenseReplace: 1, intermediateSize: 10944,
      moeIntermediateSize: 1408, nRoutedExperts: 64, numExpertsPerTok: 6, nSharedExperts: 2, moeLayerFreq: 1,
      scoringFunc: 'softmax', topkMethod: 'greedy', nGroup: 1, topkGroup: 1, normTopkProb: false, routedScalingFactor: 1,
      numAttentionHeads: 16, numKeyValueHeads: 16, qLoraRank: null, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64,
      vHeadDim: 128, rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 163840, bosTokenId: 100000, eosTokenId: 100001,
      tieWordEmbeddings: false, qkHeadDim: 192, torchDtype: 'bfloat16',
    });
    expect(c.ropeScaling).toEqual({ type: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1, mscale: 0.707, mscaleAllDim: 0.707 });
    expect(c.denseLayers).toEqual([0]);
    expect(c.moeLayers).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
  });

  it('accepts every tiny geometry', () => {
    for (const [name, g] of Object.entries(TINY_GEOMETRIES)) {
      const c = parse(g);
      expect(c.moeLayers.length + c.denseLayers.length, name).toBe(c.numHiddenLayers);
    }
    expect(parse(TINY_GEOMETRIES['tiny-b']).qLoraRank).toBe(48);
  });

  it("reads transformers 5's rope_parameters when rope_scaling is absent", () => {
    const c = parse({ rope_scaling: undefined, rope_theta: undefined, rope_parameters: { rope_type: 'yarn', rope_theta: 5000, factor: 4, original_max_position_embeddings: 1024 } });
    expect(c.ropeTheta).toBe(5000);
    expect(c.ropeScaling).toMatchObject({ type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 1024, mscale: 1, mscaleAllDim: 0 });
    expect(parse({ rope_scaling: null }).ropeScaling).toBeNull();
  });

  it('takes the first of several eos ids', () => {
    const c = parse({ eos_token_id: [100001, 100002] });
    expect(c.eosTokenId).toBe(100001);
    expect(c.eosTokenIds).toEqual([100001, 100002]);
  });
});

describe('config.json: unsupported values are rejected by name', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['scoring_func', { scoring_func: 'sigmoid' }, /unsupported scoring_func = "sigmoid"/],
    ['topk_method group_limited_greedy', { topk_method: 'group_limited_greedy' }, /unsupported topk_method = "group_limited_greedy"/],
    ['topk_method noaux_tc', { topk_method: 'noaux_tc' }, /unsupported topk_method = "noaux_tc"/],
    ['rope_scaling type', { rope_scaling: { type: 'linear', factor: 2 } }, /unsupported rope_scaling\.type = "linear"/],
    ['rope_scaling dynamic via rope_type', { rope_scaling: { rope_type: 'dynamic', factor: 2 } }, /unsupported rope_scaling\.type = "dynamic"/],
    ['moe_layer_freq', { moe_layer_freq: 2 }, /unsupported moe_layer_freq = 2/],
    ['tie_word_embeddings', { tie_word_embeddings: true }, /unsupported tie_word_embeddings = true/],
    ['model_type', { model_type: 'deepseek_v3' }, /unsupported model_type = "deepseek_v3"/],
    ['hidden_act', { hidden_act: 'gelu' }, /unsupported hidden_act = "gelu"/],
    ['num_key_value_heads', { num_key_value_heads: 8 }, /unsupported num_key_value_heads = 8/],
    ['n_shared_experts 0', { n_shared_experts: 0 }, /unsupported n_shared_experts = 0/],
    ['attention_bias', { attention_bias: true }, /unsupported attention_bias = true/],
    ['norm_topk_prob with a scaling factor', { norm_topk_prob: true, routed_scaling_factor: 2.5 }, /unsupported routed_scaling_factor = 2\.5: must be 1\.0 when norm_topk_prob/],
    ['odd rope dim', { qk_rope_head_dim: 63 }, /unsupported qk_rope_head_dim = 63/],
    ['yarn factor below 1', { rope_scaling: { type: 'yarn', factor: 0.5, original_max_position_embeddings: 4096 } }, /rope_scaling\.factor/],
  ];
  for (const [what, overrides, message] of cases) {
    it(what, () => {
      expect(() => parse(overrides)).toThrow(BadInputError);
      expect(() => parse(overrides)).toThrow(message);
    });
  }
});

describe('config.json: wrong types and ranges name the field', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ vocab_size: '102400' }, /cfg\.json: vocab_size must be an integer/],
    [{ hidden_size: undefined }, /hidden_size is missing/],
    [{ num_experts_per_tok: 65 }, /num_experts_per_tok = 65 is out of range \[1, 64\]/],
    [{ first_k_dense_replace: 28 }, /first_k_dense_replace = 28 is out of range/],
    [{ bos_token_id: 200000 }, /bos_token_id = 200000 is out of range/],
    [{ eos_token_id: [] }, /eos_token_id is an empty list/],
    [{ rms_norm_eps: 0 }, /rms_norm_eps must be a positive number/],
    [{ norm_topk_prob: 'yes' }, /norm_topk_prob must be true or false/],
    [{ q_lora_rank: 1.5 }, /q_lora_rank must be an integer/],
    [{ rope_scaling: 'yarn' }, /rope_scaling must be an object or null/],
    [{ rope_scaling: { type: 'yarn', factor: 40 } }, /rope_scaling\.original_max_position_embeddings is missing/],
    [{ n_routed_experts: 1e9 }, /n_routed_experts = 1000000000 is out of range/],
  ];
  for (const [overrides, message] of cases) {
    it(message.source, () => expect(() => parse(overrides)).toThrow(message));
  }
  it('refuses a non-object', () => expect(() => parseModelConfig([1, 2], 'cfg.json')).toThrow(/expected a JSON object/));
});

describe('loadModelConfig and configHash', () => {
  const d = tempDir();
  afterAll(() => d.cleanup());

  it('reads the file and hashes its bytes', () => {
    const dir = join(d.path, 'ok');
    mkdirSync(dir);
    const text = JSON.stringify(LITE_CONFIG, null, 1);
    writeFileSync(join(dir, 'config.json'), text);
    expect(loadModelConfig(dir).numHiddenLayers).toBe(27);
    expect(configHash(dir)).toBe(createHash('sha256').update(text).digest('hex'));
  });

  it('names a missing or broken config.json', () => {
    const dir = join(d.path, 'bad');
    mkdirSync(dir);
    expect(() => loadModelConfig(dir)).toThrow(/config\.json: missing/);
    expect(() => configHash(dir)).toThrow(/config\.json: missing/);
    writeFileSync(join(dir, 'config.json'), '{"vocab_size": 12,');
    expect(() => loadModelConfig(dir)).toThrow(/config\.json: not valid JSON/);
  });
});
