#include "moe/config.h"

#include <string>

#include "moe/error.h"

namespace moe {

namespace {
void require(bool ok, const char* field, const std::string& why) {
  if (!ok) throw Error(std::string("model config: ") + field + " " + why);
}
}  // namespace

void ModelConfig::validate() const {
  require(vocab_size > 0, "vocab_size", "must be > 0");
  require(hidden_size > 0, "hidden_size", "must be > 0");
  require(num_hidden_layers > 0, "num_hidden_layers", "must be > 0");
  require(num_attention_heads > 0, "num_attention_heads", "must be > 0");
  require(kv_lora_rank > 0, "kv_lora_rank", "must be > 0");
  require(q_lora_rank >= 0, "q_lora_rank", "must be >= 0 (0 means none)");
  require(qk_nope_head_dim > 0, "qk_nope_head_dim", "must be > 0");
  require(qk_rope_head_dim > 0 && qk_rope_head_dim % 2 == 0, "qk_rope_head_dim", "must be even and > 0");
  require(v_head_dim > 0, "v_head_dim", "must be > 0");
  require(rms_norm_eps > 0, "rms_norm_eps", "must be > 0");
  require(first_k_dense_replace >= 0, "first_k_dense_replace", "must be >= 0");
  require(moe_layer_freq >= 1, "moe_layer_freq", "must be >= 1");
  bool any_dense = false, any_moe = false;
  for (int l = 0; l < num_hidden_layers; ++l) (is_moe_layer(l) ? any_moe : any_dense) = true;
  if (any_dense) require(intermediate_size > 0, "intermediate_size", "must be > 0 (a layer is dense)");
  if (any_moe) {
    require(moe_intermediate_size > 0, "moe_intermediate_size", "must be > 0");
    require(num_experts_per_tok >= 1 && num_experts_per_tok <= n_routed_experts, "num_experts_per_tok",
            "must be in [1, n_routed_experts]");
    require(n_shared_experts >= 0, "n_shared_experts", "must be >= 0");
    require(routed_scaling_factor > 0, "routed_scaling_factor", "must be > 0");
  }
  require(rope.type == "default" || rope.type == "yarn", "rope_scaling.type",
          "'" + rope.type + "' is not supported (default or yarn)");
  require(rope.theta > 0, "rope_theta", "must be > 0");
  if (rope.type == "yarn") {
    require(rope.original_max_position_embeddings > 0, "rope_scaling.original_max_position_embeddings", "must be > 0");
    require(rope.factor > 0 || max_position_embeddings > 0, "rope_scaling.factor",
            "must be > 0 (or max_position_embeddings given to derive it)");
  }
  require(eos_token_id < vocab_size, "eos_token_id", "must be < vocab_size");
  require(bos_token_id < vocab_size, "bos_token_id", "must be < vocab_size");
}

}  // namespace moe
