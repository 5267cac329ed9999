import type { ModelConfig } from './config.js';

/**
 * Every tensor a DeepSeek-V2 checkpoint must hold for a given config, with the original Hub names
 * and shapes ([out, in] for projections, as nn.Linear stores them). The order is the natural
 * reading order (embedding, layers in order, final norm, lm_head), which the synthetic writer uses.
 */
export interface ExpectedTensor {
  name: string;
  shape: number[];
  /** how the shape follows from config.json, for error messages */
  from: string;
  /** initialisation hint for synthetic weights: 'norm' (near 1), 'embedding', or 'linear' (fan_in = shape[1]) */
  kind: 'norm' | 'embedding' | 'linear';
  /** -1 for tensors outside the layers */
  layer: number;
  /** routed expert index, -1 otherwise */
  expert: number;
}

export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const push = (name: string, shape: number[], from: string, kind: ExpectedTensor['kind'], layer = -1, expert = -1) =>
    out.push({ name, shape, from, kind, layer, expert });
  const H = c.hiddenSize;
  push('model.embed_tokens.weight', [c.vocabSize, H], 'vocab_size, hidden_size', 'embedding');
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    push(`${p}input_layernorm.weight`, [H], 'hidden_size', 'norm', i);
    for (const t of attentionTensors(c)) push(`${p}self_attn.${t.name}`, t.shape, t.from, t.kind, i);
    push(`${p}post_attention_layernorm.weight`, [H], 'hidden_size', 'norm', i);
    if (i < c.firstKDenseReplace) {
      const I = c.intermediateSize;
      const from = `layer ${i} < first_k_dense_replace: dense MLP of intermediate_size`;
      push(`${p}mlp.gate_proj.weight`, [I, H], from, 'linear', i);
      push(`${p}mlp.up_proj.weight`, [I, H], from, 'linear', i);
      push(`${p}mlp.down_proj.weight`, [H, I], from, 'linear', i);
    } else {
      push(`${p}mlp.gate.weight`, [c.nRoutedExperts, H], 'n_routed_experts, hidden_size', 'linear', i);
      const E = c.moeIntermediateSize;
      for (let e = 0; e < c.nRoutedExperts; e++) {
        const q = `${p}mlp.experts.${e}.`;
        const from = 'moe_intermediate_size, hidden_size';
        push(`${q}gate_proj.weight`, [E, H], from, 'linear', i, e);
        push(`${q}up_proj.weight`, [E, H], from, 'linear', i, e);
        push(`${q}down_proj.weight`, [H, E], from, 'linear', i, e);
      }
      const S = c.moeIntermediateSize * c.nSharedExperts;
      const from = 'n_shared_experts * moe_intermediate_size, hidden_size';
      push(`${p}mlp.shared_experts.gate_proj.weight`, [S, H], from, 'linear', i);
      push(`${p}mlp.shared_experts.up_proj.weight`, [S, H], from, 'linear', i);
      push(`${p}mlp.shared_experts.down_proj.weight`, [H, S], from, 'linear', i);
    }
  }
  push('model.norm.weight', [H], 'hidden_size', 'norm');
  push('lm_head.weight', [c.vocabSize, H], 'vocab_size, hidden_size', 'linear');
  return out;
}

function attentionTensors(c: ModelConfig): { name: string; shape: number[]; from: string; kind: ExpectedTensor['kind'] }[] {
  const H = c.hiddenSize;
  const nh = c.numAttentionHeads;
  const qOut = nh * c.qkHeadDim;
  const t: { name: string; shape: number[]; from: string; kind: ExpectedTensor['kind'] }[] = [];
  if (c.qLoraRank === null) {
    t.push({ name: 'q_proj.weight', shape: [qOut, H], from: 'q_lora_rank null: num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim), hidden_size', kind: 'linear' });
  } else {
    t.push({ name: 'q_a_proj.weight', shape: [c.qLoraRank, H], from: 'q_lora_rank, hidden_size', kind: 'linear' });
    t.push({ name: 'q_a_layernorm.weight', shape: [c.qLoraRank], from: 'q_lora_rank', kind: 'norm' });
    t.push({ name: 'q_b_proj.weight', shape: [qOut, c.qLoraRank], from: 'num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim), q_lora_rank', kind: 'linear' });
  }
  t.push({ name: 'kv_a_proj_with_mqa.weight', shape: [c.kvLoraRank + c.qkRopeHeadDim, H], from: 'kv_lora_rank + qk_rope_head_dim, hidden_size', kind: 'linear' });
  t.push({ name: 'kv_a_layernorm.weight', shape: [c.kvLoraRank], from: 'kv_lora_rank', kind: 'norm' });
  t.push({ name: 'kv_b_proj.weight', shape: [nh * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank], from: 'num_attention_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank', kind: 'linear' });
  t.push({ name: 'o_proj.weight', shape: [H, nh * c.vHeadDim], from: 'hidden_size, num_attention_heads * v_head_dim', kind: 'linear' });
  return t;
}
