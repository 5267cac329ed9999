import type { Checkpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import type { NativeModelConfig, NativeTensor } from './native-binding.js';

/** The validated TypeScript config in the shape the C++ ModelConfig struct takes. */
export function toNativeConfig(c: ModelConfig): NativeModelConfig {
  const y = c.ropeScaling;
  return {
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numHiddenLayers,
    intermediate_size: c.intermediateSize,
    moe_intermediate_size: c.moeIntermediateSize,
    first_k_dense_replace: c.firstKDenseReplace,
    moe_layer_freq: c.moeLayerFreq,
    n_routed_experts: c.nRoutedExperts,
    num_experts_per_tok: c.numExpertsPerTok,
    n_shared_experts: c.nSharedExperts,
    norm_topk_prob: c.normTopkProb,
    routed_scaling_factor: c.routedScalingFactor,
    num_attention_heads: c.numAttentionHeads,
    q_lora_rank: c.qLoraRank ?? 0,
    kv_lora_rank: c.kvLoraRank,
    qk_nope_head_dim: c.qkNopeHeadDim,
    qk_rope_head_dim: c.qkRopeHeadDim,
    v_head_dim: c.vHeadDim,
    rms_norm_eps: c.rmsNormEps,
    max_position_embeddings: c.maxPositionEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    tie_word_embeddings: c.tieWordEmbeddings,
    rope: y
      ? {
          type: 'yarn',
          theta: c.ropeTheta,
          factor: y.factor,
          original_max_position_embeddings: y.originalMaxPositionEmbeddings,
          beta_fast: y.betaFast,
          beta_slow: y.betaSlow,
          mscale: y.mscale,
          mscale_all_dim: y.mscaleAllDim,
          attention_factor: 0,
          truncate: true,
        }
      : {
          type: 'default',
          theta: c.ropeTheta,
          factor: 0,
          original_max_position_embeddings: 0,
          beta_fast: 0,
          beta_slow: 0,
          mscale: 0,
          mscale_all_dim: 0,
          attention_factor: 0,
          truncate: true,
        },
  };
}

export function toNativeTensors(ckpt: Checkpoint): NativeTensor[] {
  return [...ckpt.tensors.values()].map((t) => ({ name: t.name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
}
