#pragma once
// The model blueprint: every config.json field the DeepSeek-V2 forward depends on, already parsed
// (the TypeScript loader reads config.json; this struct is what crosses the binding).
#include <string>

namespace moe {

// RoPE of the qk_rope_head_dim part. type "default" uses theta only; "yarn" uses the rest.
// Fields a config leaves out are 0 (or `truncate` true), which the YaRN code treats exactly as
// transformers' _compute_yarn_parameters treats a missing key.
struct RopeConfig {
  std::string type = "default";  // "default" | "yarn"
  double theta = 10000.0;
  double factor = 0.0;  // 0: derived as max_position_embeddings / original_max_position_embeddings
  double original_max_position_embeddings = 0.0;
  double beta_fast = 0.0;  // 0: 32
  double beta_slow = 0.0;  // 0: 1
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
  double attention_factor = 0.0;  // 0: derived from factor, mscale, mscale_all_dim
  bool truncate = true;
};

struct ModelConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int intermediate_size = 0;      // dense MLP of the first first_k_dense_replace layers
  int moe_intermediate_size = 0;  // one routed expert
  int first_k_dense_replace = 0;
  int moe_layer_freq = 1;
  int n_routed_experts = 0;
  int num_experts_per_tok = 0;
  int n_shared_experts = 0;  // one MLP of width n_shared_experts * moe_intermediate_size; 0 = none
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int num_attention_heads = 0;
  int q_lora_rank = 0;  // 0: plain q_proj (config null)
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  double rms_norm_eps = 1e-6;
  int max_position_embeddings = 0;
  RopeConfig rope;
  int bos_token_id = -1;
  int eos_token_id = -1;
  bool tie_word_embeddings = false;

  int qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Width of one token's entry in the compact MLA cache: [c_kv normalised | k_pe rotated].
  int kv_cache_width() const { return kv_lora_rank + qk_rope_head_dim; }
  bool is_moe_layer(int layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  // Throws moe::Error naming the first field that is missing or out of range.
  void validate() const;
};

}  // namespace moe
