#pragma once
// CUDA kernels of the DeepSeek-V2 forward (issue 5), one op per .cu file beside this header.
//
// Conventions, shared by every launcher:
// - raw device pointers and a cudaStream_t; nothing allocates, frees or synchronises with the host,
//   so every launcher can be captured into a CUDA graph. Scratch comes in as a caller-owned workspace
//   whose size a *_workspace_bytes() function gives.
// - activations between GEMMs are bf16 ([rows, width] row-major with an explicit row stride in
//   elements); the residual stream, router logits and sampling logits are fp32; all arithmetic
//   inside a kernel is fp32 (accumulators too), with one rounding when bf16 is stored.
// - weights are the checkpoint's bf16 tensors as they are ([out, in] row-major), norm weights fp32.
// - per-step values that change between graph replays (positions, sequence lengths, cache rows,
//   routing) are device arrays; only shapes and upper bounds are host integers.
// - a launcher throws moe::cuda::CudaError (cuda_check.h) on a bad argument or a failed launch.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace moe::cuda {

using bf16 = __nv_bfloat16;

// ---- RMSNorm (rmsnorm.cu) -------------------------------------------------------------------
// out[t, :n] = x[t, :n] * rsqrt(mean(x[t, :n]^2) + eps) * w, in fp32, rounded once on store.
// x and out may alias when they have the same dtype and stride. n % 8 == 0 (vector loads).
void rmsnorm_f32_to_bf16(const float* x, int x_stride, const float* w, float eps, int rows, int n, bf16* out,
                         int out_stride, cudaStream_t stream);
void rmsnorm_bf16_to_bf16(const bf16* x, int x_stride, const float* w, float eps, int rows, int n, bf16* out,
                          int out_stride, cudaStream_t stream);

// ---- YaRN RoPE (rope_yarn.cu) ---------------------------------------------------------------
// Rotates, in place, `heads` vectors of width rope_dim per row starting at element `offset` of each
// head (head stride head_stride, row stride row_stride), at position pos[row]. The checkpoint keeps
// rotary pairs interleaved: pair i is (v[2i], v[2i+1]), rotated as the complex number v[2i] + i v[2i+1]
// by angle pos * inv_freq[i] (the angle in fp32, as transformers forms it), cos/sin times
// attention_factor. This equals the reference's permute-to-halves + rotate_half up to the order of
// the elements, which q.k does not see, and is the layout the CPU engine's cache uses too.
// inv_freq: device [rope_dim / 2] fp32, from the host's YaRN table (CPU engine's make_rope_table).
void rope_yarn_inplace(bf16* x, int rows, int row_stride, int heads, int head_stride, int offset, int rope_dim,
                       const int32_t* pos, const float* inv_freq, float attention_factor, cudaStream_t stream);

// ---- MLA: compact cache append (mla_cache_append.cu) ---------------------------------------
// kv_a: [rows, kv_lora + rope] bf16 = [c_kv | k_pe] straight from kv_a_proj_with_mqa. Writes cache
// row dest_row[r]: [RMSNorm(c_kv) * kv_a_norm | RoPE(k_pe, pos[r])], bf16, width kv_lora + rope.
void mla_cache_append(const bf16* kv_a, int rows, int kv_a_stride, const float* kv_a_norm, float eps, int kv_lora,
                      int rope_dim, const int32_t* pos, const float* inv_freq, float attention_factor,
                      const int64_t* dest_row, bf16* cache, cudaStream_t stream);

// ---- MLA attention, prefill (mla_attention_prefill.cu) ---------------------------------------
// Ragged batch of `seqs` prompts that start at position 0: rows seq_start[s] .. seq_start[s + 1]
// (device [seqs + 1]) are sequence s, max_len >= every length (host bound, sizes the grid).
// q [rows, heads, nope + rope] (q_pe rotated), kv [rows, heads, nope + v] (kv_b_proj output:
// k_nope | v), k_pe [rows, rope] rotated (row stride k_pe_stride: may point into the cache rows of
// a contiguous prompt or into kv_a's output after RoPE). Causal softmax(q.k * scale) v in fp32.
// out [rows, heads * v]. Shape: nope 128, rope 64, v 128 (DeepSeek-V2's), any heads.
void mla_attention_prefill(const bf16* q, const bf16* kv, const bf16* k_pe, int k_pe_stride,
                           const int32_t* seq_start, int seqs, int max_len, int heads, float scale, bf16* out,
                           cudaStream_t stream);

// The same with q rows q_stride elements apart (e.g. a fused [q | kv_a] projection output).
void mla_attention_prefill_strided(const bf16* q, int q_stride, const bf16* kv, const bf16* k_pe, int k_pe_stride,
                                   const int32_t* seq_start, int seqs, int max_len, int heads, float scale, bf16* out,
                                   cudaStream_t stream);

// ---- MLA attention, decode on the compact cache (mla_attention_decode.cu) ---------------------
// One query row per entry b of the batch (a decode step, or the rows of a chunked prefill: each
// row has its own length). Query row b attends to cache rows cache_start[b] .. + seq_len[b]
// (seq_len includes the row's own token, already appended). Absorbed projections:
//   q_lat[h] = W_kb[h]^T q_nope[h]           ([kv_lora])
//   s[h, t]  = scale * (q_lat[h] . c_kv[t] + q_pe[h] . k_pe[t])
//   o_lat[h] = sum_t softmax(s[h])_t c_kv[t]  ([kv_lora])
//   out[h]   = W_vb[h] o_lat[h]              ([v])
// kv_b: [heads * (nope + v), kv_lora] bf16 (kv_b_proj.weight: per head nope rows of W_kb then v rows
// of W_vb). q [B, heads, nope + rope]; out [B, heads * v] bf16. seq_len 0 gives zeros.
// max_ctx: host upper bound of seq_len (sizes the split-K grid; a CUDA graph captures it once).
// Shape: nope 128, rope 64, v 128, kv_lora 512, heads % 16 == 0.
size_t mla_decode_workspace_bytes(int batch, int heads, int max_ctx);
void mla_attention_decode(const bf16* q, const bf16* kv_b, const bf16* cache, int cache_stride,
                          const int64_t* cache_start, const int32_t* seq_len, int batch, int heads, int max_ctx,
                          float scale, bf16* out, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Same computation with the absorbed projections as two cuBLAS strided-batched GEMMs over the heads
// (bf16 operands, fp32 accumulation; the latent output is rounded to bf16 once, as the GEMM operand),
// q with an explicit row stride (q_stride elements, e.g. a fused [q | kv_a] projection output) and
// out with row stride out_stride. Graph-capturable (no host sync; cuBLAS needs a workspace set).
size_t mla_decode_cublas_workspace_bytes(int batch, int heads, int max_ctx);
void mla_attention_decode_cublas(cublasHandle_t handle, const bf16* q, int q_stride, const bf16* kv_b,
                                 const bf16* cache, int cache_stride, const int64_t* cache_start,
                                 const int32_t* seq_len, int batch, int heads, int max_ctx, float scale, bf16* out,
                                 int out_stride, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// ---- router (router_topk.cu) -------------------------------------------------------------------
// Per row: scores = softmax(logits[row, :n_experts]) in fp32; the top-k by score (greedy, ties to the
// lower expert id), ordered by descending score; weight = score * routed_scaling_factor, or, when
// norm_topk_prob and k > 1, score / (sum of the k scores + 1e-20) (DeepSeek-V2's MoEGate).
// n_experts <= 256, k <= 16.
void router_topk(const float* logits, int rows, int n_experts, int k, bool norm_topk_prob,
                 float routed_scaling_factor, int32_t* expert, float* weight, cudaStream_t stream);

// ---- SiLU-mul (silu_mul.cu) ------------------------------------------------------------------------
// out[r, i] = silu(gu[r, i]) * gu[r, d_ff + i] for a fused [gate | up] GEMM output of width 2 * d_ff.
// d_ff % 8 == 0. out may not alias gu.
void silu_mul(const bf16* gu, int rows, int d_ff, int gu_stride, bf16* out, int out_stride, cudaStream_t stream);

// ---- grouped routed-expert FFN (expert_ffn_grouped.cu) -------------------------------------------------
// y[t] = sum_j weight[t, j] * expert_{expert[t, j]}(x[t]) for the top-k routing of `rows` tokens,
// expert(x) = down(silu(gate x) * up x), bf16 weights read once per expert and step, fp32 accumulation.
// Weight pointers are device arrays of n_experts pointers (an offloading cache may keep each expert
// anywhere); a null pointer for a chosen expert is a caller error (not checked on the device).
// gate, up: [d_ff, hidden]; down: [hidden, d_ff]. Output y is fp32 [rows, hidden] (out_stride), either
// overwritten or accumulated into (accumulate: y += ..., e.g. onto the shared experts' output).
// Grouping (tokens by expert) runs on the device: no host round trip, graph-capturable.
// hidden % 64 == 0, d_ff % 64 == 0.
// Subsets (offloading: hits now, misses when their copies land): an entry whose expert id is negative is
// skipped. expert_out (optional, fp32 [rows * k, hidden], entry t * k + j): when given, each computed
// entry's weight * expert(x) is written there and nothing is combined (y, y_stride, accumulate unused);
// combine_expert_outputs then sums the entries in the same fixed order as the single-launch path, so the
// result is bitwise the same however the entries were split over launches.
void combine_expert_outputs(const float* expert_out, const int32_t* expert, int rows, int k, int hidden, float* y,
                            int y_stride, bool accumulate, cudaStream_t stream);
size_t expert_ffn_workspace_bytes(int rows, int k, int n_experts, int hidden, int d_ff);
void expert_ffn_grouped(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                        int n_experts, int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up,
                        const bf16* const* w_down, float* y, int y_stride, bool accumulate, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream);
// The same writing each entry's output to expert_out (see above) instead of combining (expert_out null:
// exactly expert_ffn_grouped).
void expert_ffn_grouped_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                                int n_experts, int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up,
                                const bf16* const* w_down, float* y, int y_stride, bool accumulate, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream, float* expert_out);

// ---- routed-expert FFN for small batches (expert_ffn_decode.cu) ---------------------------------------
// Same contract as expert_ffn_grouped (including the per-expert pointer arrays and accumulate), as
// grouped GEMVs: each weight row is read once per step and reused for all of the expert's tokens.
// For decode (up to a few tokens per expert); shapes: expert_ffn_decode_supported().
bool expert_ffn_decode_supported(int hidden, int d_ff, int n_experts);
size_t expert_ffn_decode_workspace_bytes(int rows, int k, int n_experts, int hidden, int d_ff);
void expert_ffn_decode(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                       int n_experts, int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up,
                       const bf16* const* w_down, float* y, int y_stride, bool accumulate, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream);
void expert_ffn_decode_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                               int n_experts, int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up,
                               const bf16* const* w_down, float* y, int y_stride, bool accumulate, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream, float* expert_out);

// ---- prefill MoE helpers (expert_ffn_decode.cu, moe_gather.cu) -------------------------------------------
// expert_group: entries = rows * k routing slots grouped by expert (n_experts <= 256): offsets
// [n_experts + 1], sorted[p] = the slot at sorted position p, inv[slot] = its position (inv may be
// null). gather_routed_rows: out[p] = x[sorted[p] / k]. scatter_combine_routed: y[t] (+)= sum_j
// weight[t, j] * ys[inv[t * k + j]] in the order j = 0..k-1 (ys fp32 [entries, hidden]).
size_t expert_group_workspace_bytes(int entries);
void expert_group(const int32_t* expert, int entries, int n_experts, int32_t* offsets, int32_t* sorted, int32_t* inv,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream);
void gather_routed_rows(const bf16* x, int x_stride, const int32_t* sorted, int k, int entries, int hidden, bf16* out,
                        cudaStream_t stream);
void scatter_combine_routed(const float* ys, const int32_t* inv, const float* weight, int rows, int k, int hidden,
                            float* y, int y_stride, bool accumulate, cudaStream_t stream);
// CPU experts (issue 12): dst[entry[r] * hidden ..] = src[r * hidden ..] for r < rows (the per-entry
// outputs computed on the host, joined to the GPU's before the one combine). Entries are distinct.
void scatter_entry_rows(const float* src, const int32_t* entry, int rows, int hidden, float* dst, cudaStream_t stream);

// Makes `stream` the handle's stream, calling cublasSetStream only when it changes (that call resets
// a workspace set with cublasSetWorkspace; linear_cublas.cu).
void bind_stream(cublasHandle_t handle, cudaStream_t stream);

// ---- dense linear through cuBLAS (linear_cublas.cu) ---------------------------------------------------
// y[t, o] = sum_k x[t, k] * W[o, k]: bf16 inputs, fp32 accumulation (CUBLAS_COMPUTE_32F), y bf16 or fp32.
// For the dense projections (q, kv_a, kv_b, o, shared experts, layer-0 MLP, lm_head).
void linear_bf16_out_bf16(cublasHandle_t handle, const bf16* x, int rows, int in, int x_stride, const bf16* W,
                          int out, bf16* y, int y_stride, cudaStream_t stream);
void linear_bf16_out_f32(cublasHandle_t handle, const bf16* x, int rows, int in, int x_stride, const bf16* W,
                         int out, float* y, int y_stride, bool accumulate, cudaStream_t stream);

// ---- embedding (embedding.cu) ----------------------------------------------------------------------
// out[t] = float(table[ids[t]]), table [vocab, hidden] bf16, out fp32 [rows, hidden]. An id outside
// [0, vocab) gives a zero row and sets *bad_id_flag to 1 (if not null) so the engine can report it
// after the step; the host validates ids before upload, this is the second line of defence.
void embedding(const bf16* table, int vocab, int hidden, const int32_t* ids, int rows, float* out, int out_stride,
               int32_t* bad_id_flag, cudaStream_t stream);

// ---- sampling (sampling.cu) ---------------------------------------------------------------------------
// The engine's greedy step: token_out[row] = the row's arg-max (lowest index on ties, the CPU sampler's
// order), nonfinite_out[row] = how many of its logits are NaN or infinite (token meaningless then).
void argmax_rows(const float* logits, int rows, int vocab, int32_t* token_out, int32_t* nonfinite_out, cudaStream_t stream);

// Per row of logits [rows, vocab] fp32: temperature[row] <= 0 -> greedy arg-max (lowest index on ties);
// else p = softmax(logits / T); keep the tokens with p >= tau, tau the largest value whose kept mass
// reaches top_p[row] (ties at tau kept); draw u in [0, kept mass) from rng_state[row] and return the
// first token in index order whose running kept mass exceeds u. rng_state advances by one per call
// (counter-based splitmix64), so replays of a captured graph draw fresh numbers. Deterministic for a
// given state; not the same stream as the CPU engine's xoshiro sampler.
// One block per row; no workspace (probabilities are recomputed from the logits on each pass).
void sample_tokens(const float* logits, int rows, int vocab, const float* temperature, const float* top_p,
                   uint64_t* rng_state, int32_t* token_out, cudaStream_t stream);

}  // namespace moe::cuda
