import { existsSync, readFileSync } from 'node:fs';
import { BadInputError, UserError } from '../../../../core/src/errors.js';

/**
 * Geometries of synthetic checkpoints, as config.json objects. Every geometry starts from the
 * complete config.json of DeepSeek-V2-Lite-Chat (all its fields, as published on the Hub) and
 * overrides the sizes, so synthetic checkpoints carry the same keys a real user's does.
 */

/** config.json of deepseek-ai/DeepSeek-V2-Lite-Chat (values in ../shared/docs/deepseek-v2-lite.md). */
export const LITE_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  architectures: ['DeepseekV2ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  auto_map: {
    AutoConfig: 'configuration_deepseek.DeepseekV2Config',
    AutoModel: 'modeling_deepseek.DeepseekV2Model',
    AutoModelForCausalLM: 'modeling_deepseek.DeepseekV2ForCausalLM',
  },
  aux_loss_alpha: 0.001,
  bos_token_id: 100000,
  eos_token_id: 100001,
  first_k_dense_replace: 1,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 10944,
  kv_lora_rank: 512,
  max_position_embeddings: 163840,
  model_type: 'deepseek_v2',
  moe_intermediate_size: 1408,
  moe_layer_freq: 1,
  n_group: 1,
  n_routed_experts: 64,
  n_shared_experts: 2,
  norm_topk_prob: false,
  num_attention_heads: 16,
  num_experts_per_tok: 6,
  num_hidden_layers: 27,
  num_key_value_heads: 16,
  pretraining_tp: 1,
  q_lora_rank: null,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  rms_norm_eps: 1e-6,
  rope_scaling: {
    beta_fast: 32,
    beta_slow: 1,
    factor: 40,
    mscale: 0.707,
    mscale_all_dim: 0.707,
    original_max_position_embeddings: 4096,
    type: 'yarn',
  },
  rope_theta: 10000,
  routed_scaling_factor: 1.0,
  scoring_func: 'softmax',
  seq_aux: true,
  tie_word_embeddings: false,
  topk_group: 1,
  topk_method: 'greedy',
  torch_dtype: 'bfloat16',
  transformers_version: '4.33.1',
  use_cache: true,
  v_head_dim: 128,
  vocab_size: 102400,
});

/**
 * Small geometries for tests. Together they vary what the forward pass must get right:
 * q_lora_rank null and set, 1 and 2 dense layers first, top-k below the expert count, norm_topk_prob
 * true and false, routed_scaling_factor != 1, v_head_dim != qk_nope_head_dim, 1 and 2 shared experts.
 * bos/eos sit near the top of the vocabulary, as in the real model (100000/100001 of 102400).
 */
export const TINY_GEOMETRIES: Readonly<Record<string, Record<string, unknown>>> = Object.freeze({
  'tiny-a': {
    vocab_size: 512, bos_token_id: 500, eos_token_id: 501,
    hidden_size: 64, num_hidden_layers: 3, first_k_dense_replace: 1, intermediate_size: 160,
    moe_intermediate_size: 32, n_routed_experts: 8, num_experts_per_tok: 2, n_shared_experts: 1,
    norm_topk_prob: false, routed_scaling_factor: 1.0,
    num_attention_heads: 4, num_key_value_heads: 4, q_lora_rank: null, kv_lora_rank: 32,
    qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16,
  },
  'tiny-b': {
    vocab_size: 1024, bos_token_id: 1000, eos_token_id: 1001,
    hidden_size: 128, num_hidden_layers: 4, first_k_dense_replace: 2, intermediate_size: 256,
    moe_intermediate_size: 48, n_routed_experts: 16, num_experts_per_tok: 4, n_shared_experts: 2,
    norm_topk_prob: true, routed_scaling_factor: 1.0,
    num_attention_heads: 4, num_key_value_heads: 4, q_lora_rank: 48, kv_lora_rank: 64,
    qk_nope_head_dim: 32, qk_rope_head_dim: 16, v_head_dim: 32,
  },
  'tiny-c': {
    vocab_size: 768, bos_token_id: 750, eos_token_id: 751,
    hidden_size: 64, num_hidden_layers: 4, first_k_dense_replace: 1, intermediate_size: 192,
    moe_intermediate_size: 24, n_routed_experts: 16, num_experts_per_tok: 6, n_shared_experts: 2,
    norm_topk_prob: false, routed_scaling_factor: 2.5,
    num_attention_heads: 8, num_key_value_heads: 8, q_lora_rank: null, kv_lora_rank: 24,
    qk_nope_head_dim: 8, qk_rope_head_dim: 8, v_head_dim: 8,
  },
  'tiny-d': {
    vocab_size: 640, bos_token_id: 620, eos_token_id: 621,
    hidden_size: 96, num_hidden_layers: 3, first_k_dense_replace: 2, intermediate_size: 192,
    moe_intermediate_size: 32, n_routed_experts: 8, num_experts_per_tok: 3, n_shared_experts: 1,
    norm_topk_prob: true, routed_scaling_factor: 1.0,
    num_attention_heads: 6, num_key_value_heads: 6, q_lora_rank: 32, kv_lora_rank: 24,
    qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 12,
  },
});

export const TINY_VARIANTS = Object.keys(TINY_GEOMETRIES);

export interface Geometry {
  /** 'lite', 'tiny-a', ... or the JSON file's path */
  name: string;
  config: Record<string, unknown>;
}

/**
 * Resolves `--geometry tiny|lite|tiny-X|<json file>`. A JSON file holds config.json keys that
 * override the DeepSeek-V2-Lite values (so `{}` is the lite geometry).
 */
export function resolveGeometry(geometry: string, tinyVariant?: string): Geometry {
  if (tinyVariant !== undefined && geometry !== 'tiny') {
    throw new UserError(`option --tiny-variant: only valid with --geometry tiny (got --geometry ${geometry})`);
  }
  if (geometry === 'lite') return { name: 'lite', config: { ...structuredClone(LITE_CONFIG) } };
  const tinyName = geometry === 'tiny' ? (tinyVariant ?? 'tiny-a') : geometry;
  if (tinyName in TINY_GEOMETRIES) {
    return { name: tinyName, config: { ...structuredClone(LITE_CONFIG), ...structuredClone(TINY_GEOMETRIES[tinyName]) } };
  }
  if (geometry === 'tiny') {
    throw new UserError(`option --tiny-variant: unknown value '${tinyVariant}' (choose from ${TINY_VARIANTS.join(', ')})`);
  }
  if (!geometry.endsWith('.json') && !existsSync(geometry)) {
    throw new UserError(`option --geometry: '${geometry}' is neither tiny, lite, ${TINY_VARIANTS.join(', ')} nor a JSON file`);
  }
  if (!existsSync(geometry)) throw new BadInputError(geometry, 'geometry file not found');
  let overrides: unknown;
  try {
    overrides = JSON.parse(readFileSync(geometry, 'utf8'));
  } catch (err) {
    throw new BadInputError(geometry, `not valid JSON (${(err as Error).message})`);
  }
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) {
    throw new BadInputError(geometry, 'expected a JSON object of config.json keys');
  }
  return { name: geometry, config: { ...structuredClone(LITE_CONFIG), ...(overrides as Record<string, unknown>) } };
}
