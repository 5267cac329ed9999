// The DeepSeek-V2 forward on the GPU, one step. Residual stream fp32; activations between GEMMs
// bf16; every GEMM bf16 x bf16 with fp32 accumulation (cuBLAS), projections that feed the residual
// (o_proj, MLP down, experts) accumulate straight into it. Nothing here synchronises with the host
// except the large-batch routed-expert path (group sizes), the MoE interceptor, the offloaded MoE layers
// outside resident steps and debug dumps, none of which runs inside a captured graph.
#include <algorithm>
#include <cstring>
#include <string>

#include "backend_kernels.h"
#include "cuda_backend_impl.h"
#include "cuda_check.h"
#include "moe/error.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda_backend {

void CudaBackend::run_model(const StepPlan& p, const StepInputs& in, bool capturing) {
  const int T = p.T, H = c_.hidden_size;
  const float eps = static_cast<float>(c_.rms_norm_eps);
  cuda::embedding(w_->embed, c_.vocab_size, H, in.tokens, T, ws_.h, H, nullptr, stream_);
  dump_f32("embed", -1, ws_.h, T, H);
  for (int l = 0; l < c_.num_hidden_layers; ++l) {
    attention(l, p, in);
    dump_f32("h_attn", l, ws_.h, T, H);
    ffn(l, p, capturing);
    dump_f32("h", l, ws_.h, T, H);
  }
  if (p.R == 0) return;
  const float* rows = ws_.h;
  if (!p.logits_identity) {
    gather_f32_rows(ws_.h, H, in.logit_idx, p.R, H, ws_.hl, stream_);
    rows = ws_.hl;
  }
  cuda::rmsnorm_f32_to_bf16(rows, H, w_->final_norm, eps, p.R, H, ws_.xl, H, stream_);
  dump_bf16("final_norm", -1, ws_.xl, p.R, H);
  cuda::linear_bf16_out_f32(cublas_, ws_.xl, p.R, H, H, w_->lm_head, c_.vocab_size, ws_.logits, c_.vocab_size, false,
                            stream_);
}

void CudaBackend::attention(int l, const StepPlan& p, const StepInputs& in) {
  const DeviceLayer& D = w_->layers[static_cast<size_t>(l)];
  const int T = p.T, H = c_.hidden_size, heads = c_.num_attention_heads;
  const int QW = w_->qkv_width, QK = c_.qk_head_dim(), nope = c_.qk_nope_head_dim, rope = c_.qk_rope_head_dim;
  const int lora = c_.kv_lora_rank, width = c_.kv_cache_width(), vd = c_.v_head_dim;
  const float eps = static_cast<float>(c_.rms_norm_eps);
  const float* inv_freq = rope_inv_freq_.as<float>();
  cuda::rmsnorm_f32_to_bf16(ws_.h, H, D.input_norm, eps, T, H, ws_.x, H, stream_);
  dump_bf16("attn_norm", l, ws_.x, T, H);
  cuda::linear_bf16_out_bf16(cublas_, ws_.x, T, H, H, D.qkv_a, QW, ws_.qkv, QW, stream_);
  cuda::rope_yarn_inplace(ws_.qkv, T, QW, heads, QK, nope, rope, in.pos, inv_freq, rope_.attention_factor, stream_);
  bf16* cache = cache_.as<bf16>() + static_cast<size_t>(l) * cache_rows_ * width;
  const bf16* kv_a = ws_.qkv + w_->q_out;
  cuda::mla_cache_append(kv_a, T, QW, D.kv_a_norm, eps, lora, rope, in.pos, inv_freq, rope_.attention_factor,
                         in.cache_row, cache, stream_);
  if (p.fresh_prompts) {
    // Whole prompts from position 0: plain-form attention over the batch's own rows (the same
    // normalised / rotated rows as the cache, written again in batch order).
    cuda::mla_cache_append(kv_a, T, QW, D.kv_a_norm, eps, lora, rope, in.pos, inv_freq, rope_.attention_factor,
                           ws_.iota, ws_.kvrows, stream_);
    const int kvw = heads * (nope + vd);
    cuda::linear_bf16_out_bf16(cublas_, ws_.kvrows, T, lora, width, D.kv_b, kvw, ws_.kv, kvw, stream_);
    cuda::mla_attention_prefill_strided(ws_.qkv, QW, ws_.kv, ws_.kvrows + lora, width, in.seq_start, p.S, p.max_len,
                                        heads, scale_, ws_.attn, stream_);
  } else {
    // Any other rows (decode, continued prompts): absorbed attention on the compact cache, each row
    // up to its own position.
    for (int r0 = 0; r0 < T; r0 += kAttnChunk) {
      const int n = std::min(kAttnChunk, T - r0);
      cuda::mla_attention_decode_cublas(cublas_, ws_.qkv + static_cast<size_t>(r0) * QW, QW, D.kv_b, cache, width,
                                        in.cache_start + r0, in.seq_len + r0, n, heads, p.max_ctx, scale_,
                                        ws_.attn + static_cast<size_t>(r0) * heads * vd, heads * vd, ws_.attn_ws,
                                        ws_.attn_ws_bytes, stream_);
    }
  }
  dump_bf16("attn_out", l, ws_.attn, T, heads * vd);
  cuda::linear_bf16_out_f32(cublas_, ws_.attn, T, heads * vd, heads * vd, D.o_proj, H, ws_.h, H, true, stream_);
}

// out (the residual stream) += down(silu(gate x) * up x), gate and up stacked in gu_w.
void CudaBackend::mlp(const bf16* gu_w, const bf16* down_w, int d_ff, int rows) {
  const int H = c_.hidden_size;
  cuda::linear_bf16_out_bf16(cublas_, ws_.x, rows, H, H, gu_w, 2 * d_ff, ws_.gu, 2 * d_ff, stream_);
  cuda::silu_mul(ws_.gu, rows, d_ff, 2 * d_ff, ws_.hbuf, d_ff, stream_);
  cuda::linear_bf16_out_f32(cublas_, ws_.hbuf, rows, d_ff, d_ff, down_w, H, ws_.h, H, true, stream_);
}

void CudaBackend::ffn(int l, const StepPlan& p, bool capturing) {
  const DeviceLayer& D = w_->layers[static_cast<size_t>(l)];
  const int T = p.T, H = c_.hidden_size, E = c_.n_routed_experts, k = c_.num_experts_per_tok;
  const int dff = c_.moe_intermediate_size;
  const float eps = static_cast<float>(c_.rms_norm_eps);
  cuda::rmsnorm_f32_to_bf16(ws_.h, H, D.post_norm, eps, T, H, ws_.x, H, stream_);
  dump_bf16("ffn_norm", l, ws_.x, T, H);
  if (!D.moe) {
    mlp(D.dense_gu, D.dense_down, c_.intermediate_size, T);
    return;
  }
  if (pool_) {  // routed experts offloaded: cuda_offload_layer.cpp (router, shared and routed experts)
    cuda::linear_bf16_out_f32(cublas_, ws_.x, T, H, H, D.router, E, ws_.router, E, false, stream_);
    dump_f32("router_logits", l, ws_.router, T, E);
    cuda::router_topk(ws_.router, T, E, k, c_.norm_topk_prob, static_cast<float>(c_.routed_scaling_factor), ws_.ids,
                      ws_.rw, stream_);
    if (resident_now_) moe_resident(l, T);  // every routed expert in a slot: cuda_resident_step.cpp
    else moe_offloaded(l, T);
    return;
  }
  // Router logits in fp32 (bf16 operands, fp32 accumulation and output), softmax + greedy top-k.
  cuda::linear_bf16_out_f32(cublas_, ws_.x, T, H, H, D.router, E, ws_.router, E, false, stream_);
  dump_f32("router_logits", l, ws_.router, T, E);
  cuda::router_topk(ws_.router, T, E, k, c_.norm_topk_prob, static_cast<float>(c_.routed_scaling_factor), ws_.ids,
                    ws_.rw, stream_);
  if (interceptor_) intercept(l, T);
  if (D.shared_gu) mlp(D.shared_gu, D.shared_down, w_->shared_ff, T);
  if (T <= kGemvMaxRows && gemv_ok_) {
    cuda::expert_ffn_decode(ws_.x, T, H, ws_.ids, ws_.rw, k, E, H, dff, D.p_gate, D.p_up, D.p_down, ws_.h, H, true,
                            ws_.expert_ws, ws_.expert_ws_bytes, stream_);
  } else if (capturing || T < kCublasRows) {
    cuda::expert_ffn_grouped(ws_.x, T, H, ws_.ids, ws_.rw, k, E, H, dff, D.p_gate, D.p_up, D.p_down, ws_.h, H, true,
                             ws_.expert_ws, ws_.expert_ws_bytes, stream_);
  } else {
    routed_cublas(l, T);
  }
}

// Large batches (prefill): one cuBLAS GEMM per expert over its gathered rows. Needs the group sizes
// on the host: one synchronisation per MoE layer.
void CudaBackend::routed_cublas(int l, int rows) {
  const DeviceLayer& D = w_->layers[static_cast<size_t>(l)];
  const int H = c_.hidden_size, E = c_.n_routed_experts, k = c_.num_experts_per_tok, dff = c_.moe_intermediate_size;
  const int entries = rows * k;
  cuda::expert_group(ws_.ids, entries, E, ws_.offsets, ws_.sorted, ws_.inv, ws_.group_ws, ws_.group_ws_bytes, stream_);
  CUDA_CHECK(cudaMemcpyAsync(offsets_host_.get(), ws_.offsets, sizeof(int32_t) * (E + 1), cudaMemcpyDeviceToHost, stream_));
  cuda::gather_routed_rows(ws_.x, H, ws_.sorted, k, entries, H, ws_.xs, stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  const int32_t* off = offsets_host_.as<int32_t>();
  for (int e = 0; e < E; ++e) {
    const int n = off[e + 1] - off[e];
    if (n == 0) continue;
    const bf16* gu_w = D.experts + w_->expert_stride * e;
    cuda::linear_bf16_out_bf16(cublas_, ws_.xs + static_cast<size_t>(off[e]) * H, n, H, H, gu_w, 2 * dff,
                               ws_.gu + static_cast<size_t>(off[e]) * 2 * dff, 2 * dff, stream_);
  }
  cuda::silu_mul(ws_.gu, entries, dff, 2 * dff, ws_.hbuf, dff, stream_);
  for (int e = 0; e < E; ++e) {
    const int n = off[e + 1] - off[e];
    if (n == 0) continue;
    const bf16* down_w = D.experts + w_->expert_stride * e + static_cast<size_t>(2) * dff * H;
    cuda::linear_bf16_out_f32(cublas_, ws_.hbuf + static_cast<size_t>(off[e]) * dff, n, dff, dff, down_w, H,
                              ws_.ys + static_cast<size_t>(off[e]) * H, H, false, stream_);
  }
  cuda::scatter_combine_routed(ws_.ys, ws_.inv, ws_.rw, rows, k, H, ws_.h, H, true, stream_);
}

// The MoeInterceptor contract on the GPU (all experts resident): the plan goes to the host
// (fetch_plan: the interceptor may rewrite it - routing replay, recording), and the rewritten routing
// goes back to the device.
void CudaBackend::intercept(int l, int rows) {
  fetch_plan(l, rows);
  const size_t n = plan_.expert.size();
  CUDA_CHECK(cudaMemcpyAsync(ws_.ids, plan_.expert.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(ws_.rw, plan_.weight.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host vectors may change before the next copy
}

void CudaBackend::dump_f32(const char* name, int layer, const float* d, int rows, int cols) {
  if (!hook_) return;
  dump_buf_.resize(static_cast<size_t>(rows) * cols);
  CUDA_CHECK(cudaMemcpyAsync(dump_buf_.data(), d, dump_buf_.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  hook_(name, layer, dump_buf_.data(), rows, cols);
}

void CudaBackend::dump_bf16(const char* name, int layer, const bf16* d, int rows, int cols) {
  if (!hook_) return;
  const size_t n = static_cast<size_t>(rows) * cols;
  std::vector<uint16_t> raw(n);
  CUDA_CHECK(cudaMemcpyAsync(raw.data(), d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  dump_buf_.resize(n);
  for (size_t i = 0; i < n; ++i) dump_buf_[i] = bf16_to_f32(raw[i]);
  hook_(name, layer, dump_buf_.data(), rows, cols);
}

}  // namespace moe::cuda_backend
