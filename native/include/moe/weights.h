#pragma once
// The model's weights: views into the checkpoint's shard files, memory-mapped read-only.
// The TypeScript loader has parsed the safetensors headers and passes, for every tensor, the file,
// the absolute byte offset of its data, its size, dtype and shape. WeightStore trusts none of it:
// it re-checks each range against the file size, each size against dtype x shape, and each shape
// against the config, so a lying header gives an error naming the tensor, never an out-of-bounds read.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/config.h"
#include "moe/tensor.h"

namespace moe {

struct TensorSource {
  std::string name;
  std::string file;      // absolute path of the shard
  uint64_t offset = 0;   // absolute byte offset of the data in the file
  uint64_t nbytes = 0;
  DType dtype = DType::BF16;
  std::vector<int64_t> shape;
};

struct MlpWeights {
  Matrix gate;  // [d_ff, hidden]
  Matrix up;    // [d_ff, hidden]
  Matrix down;  // [hidden, d_ff]
};

struct AttentionWeights {
  Matrix q_proj;                 // [heads * qk_head_dim, hidden]   (q_lora_rank == 0)
  Matrix q_a_proj;               // [q_lora_rank, hidden]           (q_lora_rank > 0)
  std::vector<float> q_a_norm;   // [q_lora_rank] fp32
  Matrix q_b_proj;               // [heads * qk_head_dim, q_lora_rank]
  Matrix kv_a_proj;              // [kv_lora_rank + qk_rope_head_dim, hidden]
  std::vector<float> kv_a_norm;  // [kv_lora_rank] fp32
  Matrix kv_b_proj;              // [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  Matrix o_proj;                 // [hidden, heads * v_head_dim]
};

struct LayerWeights {
  std::vector<float> input_norm;  // [hidden] fp32
  std::vector<float> post_norm;   // [hidden] fp32
  AttentionWeights attn;
  bool moe = false;
  MlpWeights dense;                // !moe: [intermediate_size, hidden] ...
  Matrix router;                   // moe: [n_routed_experts, hidden]
  std::vector<MlpWeights> experts; // moe: n_routed_experts of [moe_intermediate_size, hidden] ...
  bool has_shared = false;
  MlpWeights shared;               // moe: [n_shared * moe_intermediate_size, hidden] ...
};

struct ModelWeights {
  Matrix embed;                   // [vocab, hidden]
  std::vector<float> final_norm;  // [hidden] fp32
  Matrix lm_head;                 // [vocab, hidden] (the embedding when tie_word_embeddings)
  std::vector<LayerWeights> layers;
};

class MappedFile;

class WeightStore {
 public:
  // Maps the files and builds the views; throws moe::Error naming the tensor/file at fault.
  static std::unique_ptr<WeightStore> open(const ModelConfig& config, const std::vector<TensorSource>& tensors);
  ~WeightStore();
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  const ModelWeights& weights() const { return weights_; }
  // Bytes of tensor data referenced (for reports).
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  WeightStore() = default;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<std::unique_ptr<uint8_t[]>> copies_;  // misaligned tensors, copied once
  ModelWeights weights_;
  uint64_t total_bytes_ = 0;
  friend class WeightBinder;
};

}  // namespace moe
