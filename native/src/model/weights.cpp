#include "moe/weights.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>

#include "../memory/mapped_file.h"
#include "moe/error.h"

namespace moe {

// Resolves checkpoint names to checked views. Every check here is a guard against a corrupt or
// malicious header: the TS side validated too, but this layer is the one that dereferences.
class WeightBinder {
 public:
  WeightBinder(WeightStore& store, const std::vector<TensorSource>& tensors) : store_(store) {
    for (const TensorSource& t : tensors) {
      if (!by_name_.emplace(t.name, &t).second) throw Error("tensor " + t.name + ": listed twice");
    }
  }

  bool has(const std::string& name) const { return by_name_.count(name) != 0; }

  // A [rows, cols] view (cols < 0: a 1-D tensor of `rows` elements).
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) throw Error("missing tensor " + name);
    const TensorSource& t = *it->second;
    std::vector<int64_t> want = cols < 0 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, cols};
    if (t.shape != want) throw Error("tensor " + name + ": shape " + shape_str(t.shape) + ", config expects " + shape_str(want));
    const uint64_t elements = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols < 0 ? 1 : cols);
    const uint64_t nbytes = elements * dtype_size(t.dtype);
    if (t.nbytes != nbytes) {
      throw Error("tensor " + name + ": " + std::to_string(t.nbytes) + " bytes, but " + dtype_name(t.dtype) + " " +
                  shape_str(t.shape) + " needs " + std::to_string(nbytes));
    }
    MappedFile& file = map(t.file);
    if (t.offset > file.size() || t.nbytes > file.size() - t.offset) {
      throw Error("tensor " + name + ": bytes [" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.nbytes) +
                  ") lie outside " + t.file + " (" + std::to_string(file.size()) + " bytes; truncated?)");
    }
    const uint8_t* p = file.data() + t.offset;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(t.dtype) != 0) {
      // Misaligned data (a legal but odd safetensors layout): keep an aligned copy.
      std::unique_ptr<uint8_t[]> copy(new uint8_t[nbytes]);
      std::memcpy(copy.get(), p, nbytes);
      p = copy.get();
      store_.copies_.push_back(std::move(copy));
    }
    store_.total_bytes_ += nbytes;
    Matrix m;
    m.data = p;
    m.dtype = t.dtype;
    m.rows = static_cast<int>(cols < 0 ? 1 : rows);
    m.cols = static_cast<int>(cols < 0 ? rows : cols);
    return m;
  }

  std::vector<float> vector_f32(const std::string& name, int64_t n) {
    Matrix m = matrix(name, n, -1);
    std::vector<float> out(static_cast<size_t>(n));
    matrix_row_to_f32(m, 0, out.data());
    return out;
  }

  MlpWeights mlp(const std::string& prefix, int64_t d_ff, int64_t hidden) {
    MlpWeights w;
    w.gate = matrix(prefix + ".gate_proj.weight", d_ff, hidden);
    w.up = matrix(prefix + ".up_proj.weight", d_ff, hidden);
    w.down = matrix(prefix + ".down_proj.weight", hidden, d_ff);
    return w;
  }

 private:
  static std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  }

  MappedFile& map(const std::string& path) {
    auto it = files_.find(path);
    if (it != files_.end()) return *it->second;
    store_.files_.push_back(std::make_unique<MappedFile>(path));
    MappedFile& f = *store_.files_.back();
    files_.emplace(path, &f);
    return f;
  }

  WeightStore& store_;
  std::unordered_map<std::string, const TensorSource*> by_name_;
  std::unordered_map<std::string, MappedFile*> files_;
};

std::unique_ptr<WeightStore> WeightStore::open(const ModelConfig& c, const std::vector<TensorSource>& tensors) {
  c.validate();
  std::unique_ptr<WeightStore> store(new WeightStore());
  WeightBinder b(*store, tensors);
  ModelWeights& w = store->weights_;
  const int64_t H = c.hidden_size;
  const int64_t heads = c.num_attention_heads;

  w.embed = b.matrix("model.embed_tokens.weight", c.vocab_size, H);
  w.final_norm = b.vector_f32("model.norm.weight", H);
  if (b.has("lm_head.weight")) w.lm_head = b.matrix("lm_head.weight", c.vocab_size, H);
  else if (c.tie_word_embeddings) w.lm_head = w.embed;
  else throw Error("missing tensor lm_head.weight (and tie_word_embeddings is false)");

  w.layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    L.input_norm = b.vector_f32(p + ".input_layernorm.weight", H);
    L.post_norm = b.vector_f32(p + ".post_attention_layernorm.weight", H);
    AttentionWeights& a = L.attn;
    const std::string ap = p + ".self_attn";
    if (c.q_lora_rank > 0) {
      a.q_a_proj = b.matrix(ap + ".q_a_proj.weight", c.q_lora_rank, H);
      a.q_a_norm = b.vector_f32(ap + ".q_a_layernorm.weight", c.q_lora_rank);
      a.q_b_proj = b.matrix(ap + ".q_b_proj.weight", heads * c.qk_head_dim(), c.q_lora_rank);
    } else {
      a.q_proj = b.matrix(ap + ".q_proj.weight", heads * c.qk_head_dim(), H);
    }
    a.kv_a_proj = b.matrix(ap + ".kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, H);
    a.kv_a_norm = b.vector_f32(ap + ".kv_a_layernorm.weight", c.kv_lora_rank);
    a.kv_b_proj = b.matrix(ap + ".kv_b_proj.weight", heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
    a.o_proj = b.matrix(ap + ".o_proj.weight", H, heads * c.v_head_dim);

    L.moe = c.is_moe_layer(l);
    if (!L.moe) {
      L.dense = b.mlp(p + ".mlp", c.intermediate_size, H);
      continue;
    }
    L.router = b.matrix(p + ".mlp.gate.weight", c.n_routed_experts, H);
    L.experts.reserve(static_cast<size_t>(c.n_routed_experts));
    for (int e = 0; e < c.n_routed_experts; ++e) {
      L.experts.push_back(b.mlp(p + ".mlp.experts." + std::to_string(e), c.moe_intermediate_size, H));
    }
    L.has_shared = c.n_shared_experts > 0;
    if (L.has_shared) {
      L.shared = b.mlp(p + ".mlp.shared_experts", static_cast<int64_t>(c.n_shared_experts) * c.moe_intermediate_size, H);
    }
  }
  return store;
}

WeightStore::~WeightStore() = default;

}  // namespace moe
