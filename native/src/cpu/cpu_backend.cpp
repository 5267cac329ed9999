// The reference backend: the DeepSeek-V2 forward on the CPU over a ragged batch, fp32 arithmetic on
// bf16 (or f16/f32) weights. Linear layers run over all rows of the batch at once; attention runs per
// row against that row's own sequence cache, so prompts of different lengths share one forward.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../memory/kv_cache.h"
#include "moe/backend.h"
#include "moe/error.h"
#include "moe/kernels.h"
#include "moe/quant/expert_blobs.h"
#include "moe/quant/expert_kernels.h"
#include "moe/thread_pool.h"

namespace moe {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelConfig& c, const ModelWeights& w, const CpuBackendOptions& o)
      : c_(c), w_(w), pool_(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency())) {
    if (o.expert_dtype != quant::ExpertDType::BF16) quantize_experts(o);
    rope_ = make_rope_table(c);
    dims_.heads = c.num_attention_heads;
    dims_.nope = c.qk_nope_head_dim;
    dims_.rope = c.qk_rope_head_dim;
    dims_.v = c.v_head_dim;
    dims_.kv_lora = c.kv_lora_rank;
    dims_.scale = attention_softmax_scale(c);
    // kv_b is read 2 x heads times per token and layer by the absorbed attention: keep an fp32 copy.
    kv_b_.resize(w.layers.size());
    for (size_t l = 0; l < w.layers.size(); ++l) {
      const Matrix& m = w.layers[l].attn.kv_b_proj;
      kv_b_[l].resize(static_cast<size_t>(m.rows) * m.cols);
      for (int r = 0; r < m.rows; ++r) matrix_row_to_f32(m, r, kv_b_[l].data() + static_cast<size_t>(r) * m.cols);
    }
  }

  const char* name() const override { return "cpu"; }
  std::string device_info() const override;

  void reset_sequences(const std::vector<int>& capacity) override {
    seqs_.clear();
    seqs_.reserve(capacity.size());
    for (int cap : capacity) {
      if (cap <= 0) throw Error("sequence capacity must be > 0");
      seqs_.emplace_back(c_.num_hidden_layers, cap, c_.kv_cache_width());
    }
  }

  int sequence_length(int slot) const override { return seqs_.at(static_cast<size_t>(slot)).length; }
  void clear_sequence(int slot) override { seqs_.at(static_cast<size_t>(slot)).length = 0; }

  void set_debug_hook(DebugHook hook) override { hook_ = std::move(hook); }
  void set_moe_interceptor(MoeInterceptor* i) override { interceptor_ = i; }

  void forward(const StepBatch& b, float* logits) override;

 private:
  void check_batch(const StepBatch& b, std::vector<int>& new_length) const;
  void attention(int layer, const StepBatch& b);
  void moe(int layer, const StepBatch& b);
  void quantize_experts(const CpuBackendOptions& o);
  // The blob of routed expert e of model layer l (quantized experts only).
  const uint8_t* blob(int l, int e) const {
    return blobs_.get() + (static_cast<size_t>(moe_index_[static_cast<size_t>(l)]) * c_.n_routed_experts + static_cast<size_t>(e)) * layout_.bytes;
  }
  void dump(const char* name, int layer, const float* data, int rows, int cols) {
    if (hook_) hook_(name, layer, data, rows, cols);
  }
  static void grow(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
  }

  const ModelConfig& c_;
  const ModelWeights& w_;
  ThreadPool pool_;
  RopeTable rope_;
  MlaDims dims_;
  std::vector<std::vector<float>> kv_b_;  // per layer [heads * (nope + v), kv_lora] fp32
  std::vector<KvCache> seqs_;
  DebugHook hook_;
  MoeInterceptor* interceptor_ = nullptr;
  // Scratch, grown to the largest batch seen and reused.
  std::vector<float> h_, x_, q_, qa_, ckv_, attn_, tmp_, ffn_, router_, gx_, gy_, dbg_;
  FfnScratch ffn_scratch_;
  MoePlan plan_;
  // Quantized routed experts (CpuBackendOptions::expert_dtype): every MoE layer's blobs (moe/quant/expert_blobs.h),
  // moe_index_[l] the MoE layer index of model layer l (-1 for a dense layer). Empty: bf16 from the checkpoint.
  quant::ExpertLayout layout_;
  std::unique_ptr<uint8_t[]> blobs_;  // not value-initialized: the fill writes every byte (padding included)
  size_t blob_bytes_ = 0;
  std::vector<int> moe_index_;
  double quantize_seconds_ = 0;
  bool has_file_ = false;
  quant::QuantizedFileResult file_result_;
};

void CpuBackend::quantize_experts(const CpuBackendOptions& o) {
  layout_ = quant::expert_layout(o.expert_dtype, c_.hidden_size, c_.moe_intermediate_size, o.expert_group);
  const std::vector<int> moe_layers = quant::moe_layer_ids(w_);
  moe_index_.assign(w_.layers.size(), -1);
  for (size_t mi = 0; mi < moe_layers.size(); ++mi) moe_index_[static_cast<size_t>(moe_layers[mi])] = static_cast<int>(mi);
  blob_bytes_ = quant::expert_blobs_bytes(c_, moe_layers, layout_);
  blobs_.reset(new uint8_t[blob_bytes_]);
  if (!o.quantized_file.path.empty()) {
    has_file_ = true;
    file_result_ = quant::fill_expert_blobs_with_file(c_, w_, moe_layers, layout_, blobs_.get(), o.quantized_file, quantize_seconds_);
  } else {
    quantize_seconds_ = quant::fill_expert_blobs(c_, w_, moe_layers, layout_, blobs_.get());
  }
  const double gb = 1e-9 * static_cast<double>(blob_bytes_);
  const char* dt = quant::expert_dtype_name(layout_.dtype);
  if (has_file_ && file_result_.read) {
    std::fprintf(stderr, "moe: routed experts in host memory: %.2f GB %s (read %.1f s from %s%s)\n", gb, dt, file_result_.read_seconds, file_result_.path.c_str(),
                 file_result_.rebuilt > 0 ? ", some experts quantized again" : "");
  } else {
    std::fprintf(stderr, "moe: routed experts in host memory: %.2f GB %s (quantize %.1f s%s)\n", gb, dt, quantize_seconds_,
                 has_file_ && file_result_.written ? (", written to " + file_result_.path).c_str() : "");
  }
}

// {"routedExperts": {expertDtype, expertBytes, hostExpertBytes, quantizeSeconds, quantizedFile}}: what the CUDA
// backend reports under offload, for the format check and the load's log (runtime/src/engine/engine.ts).
std::string CpuBackend::device_info() const {
  const char* dt = quant::expert_dtype_name(!blobs_ ? quant::ExpertDType::BF16 : layout_.dtype);
  std::string s = std::string("{\"routedExperts\":{\"expertDtype\":\"") + dt + "\",\"expertBytes\":" + std::to_string(layout_.bytes) +
                  ",\"hostExpertBytes\":" + std::to_string(blob_bytes_) + ",\"quantizeSeconds\":" + std::to_string(quantize_seconds_) + ",\"quantizedFile\":";
  return s + (has_file_ ? quant::quantized_file_json(file_result_) : std::string("null")) + "}}";
}

void CpuBackend::check_batch(const StepBatch& b, std::vector<int>& new_length) const {
  const size_t T = b.tokens.size();
  if (T == 0) throw Error("forward: empty batch");
  if (b.seq.size() != T || b.pos.size() != T) throw Error("forward: tokens, seq and pos differ in length");
  new_length.resize(seqs_.size());
  for (size_t s = 0; s < seqs_.size(); ++s) new_length[s] = seqs_[s].length;
  for (size_t i = 0; i < T; ++i) {
    const int s = b.seq[i];
    if (s < 0 || static_cast<size_t>(s) >= seqs_.size()) throw Error("forward: sequence slot " + std::to_string(s) + " does not exist");
    if (b.pos[i] != new_length[s]) {
      throw Error("forward: row " + std::to_string(i) + " has position " + std::to_string(b.pos[i]) + " but sequence " +
                  std::to_string(s) + " continues at " + std::to_string(new_length[s]));
    }
    if (++new_length[s] > seqs_[s].capacity()) throw Error("forward: sequence " + std::to_string(s) + " exceeds its capacity");
  }
  for (int r : b.logit_rows) {
    if (r < 0 || static_cast<size_t>(r) >= T) throw Error("forward: logit row " + std::to_string(r) + " outside the batch");
  }
}

void CpuBackend::forward(const StepBatch& b, float* logits) {
  std::vector<int> new_length;
  check_batch(b, new_length);
  const int T = static_cast<int>(b.tokens.size());
  const int H = c_.hidden_size;
  const float eps = static_cast<float>(c_.rms_norm_eps);
  grow(h_, static_cast<size_t>(T) * H);
  grow(x_, static_cast<size_t>(T) * H);
  grow(tmp_, static_cast<size_t>(T) * H);
  grow(ffn_, static_cast<size_t>(T) * H);

  embedding(w_.embed, b.tokens.data(), T, h_.data());
  dump("embed", -1, h_.data(), T, H);

  for (int l = 0; l < c_.num_hidden_layers; ++l) {
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    rmsnorm(h_.data(), T, H, H, L.input_norm.data(), eps, x_.data(), H);
    dump("attn_norm", l, x_.data(), T, H);
    attention(l, b);
    for (size_t i = 0; i < static_cast<size_t>(T) * H; ++i) h_[i] += tmp_[i];
    dump("h_attn", l, h_.data(), T, H);

    rmsnorm(h_.data(), T, H, H, L.post_norm.data(), eps, x_.data(), H);
    dump("ffn_norm", l, x_.data(), T, H);
    if (L.moe) moe(l, b);
    else mlp_forward(x_.data(), T, L.dense, ffn_.data(), false, 1.0f, &pool_, ffn_scratch_);
    dump("ffn_out", l, ffn_.data(), T, H);
    for (size_t i = 0; i < static_cast<size_t>(T) * H; ++i) h_[i] += ffn_[i];
    dump("h", l, h_.data(), T, H);
  }
  for (size_t s = 0; s < seqs_.size(); ++s) seqs_[s].length = new_length[s];

  const int R = static_cast<int>(b.logit_rows.size());
  if (R == 0) return;
  for (int r = 0; r < R; ++r) {
    rmsnorm(h_.data() + static_cast<size_t>(b.logit_rows[r]) * H, 1, H, H, w_.final_norm.data(), eps,
            x_.data() + static_cast<size_t>(r) * H, H);
  }
  dump("final_norm", -1, x_.data(), R, H);
  linear(x_.data(), R, w_.lm_head, logits, &pool_);
  dump("logits", -1, logits, R, c_.vocab_size);
}

void CpuBackend::attention(int l, const StepBatch& b) {
  const AttentionWeights& A = w_.layers[static_cast<size_t>(l)].attn;
  const int T = static_cast<int>(b.tokens.size());
  const int heads = c_.num_attention_heads, qk = c_.qk_head_dim(), kvr = c_.kv_lora_rank, rope = c_.qk_rope_head_dim;
  const int width = c_.kv_cache_width();
  const float eps = static_cast<float>(c_.rms_norm_eps);

  grow(q_, static_cast<size_t>(T) * heads * qk);
  if (c_.q_lora_rank > 0) {
    grow(qa_, static_cast<size_t>(T) * c_.q_lora_rank);
    linear(x_.data(), T, A.q_a_proj, qa_.data(), &pool_);
    rmsnorm(qa_.data(), T, c_.q_lora_rank, c_.q_lora_rank, A.q_a_norm.data(), eps, qa_.data(), c_.q_lora_rank);
    linear(qa_.data(), T, A.q_b_proj, q_.data(), &pool_);
  } else {
    linear(x_.data(), T, A.q_proj, q_.data(), &pool_);
  }
  for (int t = 0; t < T; ++t) {
    for (int hd = 0; hd < heads; ++hd) rope_interleaved(q_.data() + (static_cast<size_t>(t) * heads + hd) * qk + c_.qk_nope_head_dim, b.pos[t], rope_);
  }
  dump("q", l, q_.data(), T, heads * qk);

  grow(ckv_, static_cast<size_t>(T) * width);
  linear(x_.data(), T, A.kv_a_proj, ckv_.data(), &pool_);
  for (int t = 0; t < T; ++t) {
    float* row = seqs_[b.seq[t]].row(l, b.pos[t]);
    const float* src = ckv_.data() + static_cast<size_t>(t) * width;
    rmsnorm(src, 1, kvr, kvr, A.kv_a_norm.data(), eps, row, kvr);
    std::memcpy(row + kvr, src + kvr, sizeof(float) * rope);
    rope_interleaved(row + kvr, b.pos[t], rope_);
  }
  if (hook_) {
    grow(dbg_, static_cast<size_t>(T) * width);
    for (int t = 0; t < T; ++t) std::memcpy(dbg_.data() + static_cast<size_t>(t) * width, seqs_[b.seq[t]].row(l, b.pos[t]), sizeof(float) * width);
    dump("kv_cache", l, dbg_.data(), T, width);
  }

  grow(attn_, static_cast<size_t>(T) * heads * c_.v_head_dim);
  const float* kv_b = kv_b_[static_cast<size_t>(l)].data();
  pool_.parallel_for(static_cast<int64_t>(T) * heads, 1, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<float> scratch;
    for (int64_t i = i0; i < i1; ++i) {
      const int t = static_cast<int>(i / heads), hd = static_cast<int>(i % heads);
      const int ctx = b.pos[t] + 1;
      const size_t need = static_cast<size_t>(2 * kvr + ctx);
      if (scratch.size() < need) scratch.resize(need);
      KvCache& cache = seqs_[b.seq[t]];
      mla_attend_head(q_.data() + (static_cast<size_t>(t) * heads + hd) * qk, cache.row(l, 0), width, ctx, kv_b, dims_, hd,
                      attn_.data() + (static_cast<size_t>(t) * heads + hd) * c_.v_head_dim, scratch.data());
    }
  });
  dump("attn_out", l, attn_.data(), T, heads * c_.v_head_dim);
  linear(attn_.data(), T, A.o_proj, tmp_.data(), &pool_);
  dump("attn_proj", l, tmp_.data(), T, c_.hidden_size);
}

void CpuBackend::moe(int l, const StepBatch& b) {
  const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
  const int T = static_cast<int>(b.tokens.size()), H = c_.hidden_size, E = c_.n_routed_experts, k = c_.num_experts_per_tok;
  grow(router_, static_cast<size_t>(T) * E);
  linear(x_.data(), T, L.router, router_.data(), &pool_);
  dump("router_logits", l, router_.data(), T, E);

  plan_.layer = l;
  plan_.tokens = T;
  plan_.k = k;
  plan_.expert.resize(static_cast<size_t>(T) * k);
  plan_.weight.resize(static_cast<size_t>(T) * k);
  route_topk(router_.data(), T, E, k, c_.norm_topk_prob, c_.routed_scaling_factor, plan_.expert.data(), plan_.weight.data());
  if (interceptor_) interceptor_->on_plan(plan_);
  plan_.group(E);

  std::fill(ffn_.begin(), ffn_.begin() + static_cast<size_t>(T) * H, 0.0f);
  for (size_t i = 0; i < plan_.active.size(); ++i) {
    const int e = plan_.active[i];
    const MlpWeights* ew = interceptor_ ? interceptor_->expert_weights(l, e) : nullptr;
    if (ew != nullptr && blobs_) throw Error("CPU backend: MoeInterceptor::expert_weights() replacing expert weights is not supported with quantized experts; return nullptr");
    if (!ew) ew = &L.experts[static_cast<size_t>(e)];
    const int begin = plan_.group_begin[i], n = plan_.group_begin[i + 1] - begin;
    grow(gx_, static_cast<size_t>(n) * H);
    grow(gy_, static_cast<size_t>(n) * H);
    for (int j = 0; j < n; ++j) {
      std::memcpy(gx_.data() + static_cast<size_t>(j) * H, x_.data() + static_cast<size_t>(plan_.group_token[begin + j]) * H, sizeof(float) * H);
    }
    if (!blobs_) mlp_forward(gx_.data(), n, *ew, gy_.data(), false, 1.0f, &pool_, ffn_scratch_);
    else quant::expert_ffn_q_forward(gx_.data(), n, layout_, blob(l, e), gy_.data(), false, 1.0f, &pool_, ffn_scratch_);
    for (int j = 0; j < n; ++j) {
      float* out = ffn_.data() + static_cast<size_t>(plan_.group_token[begin + j]) * H;
      const float* y = gy_.data() + static_cast<size_t>(j) * H;
      const float wgt = plan_.group_weight[begin + j];
      for (int d = 0; d < H; ++d) out[d] += y[d] * wgt;
    }
  }
  if (L.has_shared) {
    mlp_forward(x_.data(), T, L.shared, tmp_.data(), false, 1.0f, &pool_, ffn_scratch_);
    for (size_t i = 0; i < static_cast<size_t>(T) * H; ++i) ffn_[i] += tmp_[i];
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& config, const ModelWeights& weights, const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(config, weights, options);
}

}  // namespace moe
