#pragma once
// The CPU kernels of the DeepSeek-V2 forward, one op per source file under src/kernels/.
// Activations are fp32 row-major [tokens, width]; weights are Matrix views (bf16, f16 or f32).
// Each kernel has a scalar reference in native/tests/ that it is tested against.
#include <cstdint>
#include <vector>

#include "moe/config.h"
#include "moe/tensor.h"
#include "moe/thread_pool.h"
#include "moe/weights.h"

namespace moe {

// ---- matmul --------------------------------------------------------------------------------
// Instruction set of the bf16 matmul. The first three keep activations in fp32 (exact up to fp32
// summation order: what the forward uses to match transformers). Avx512Bf16 rounds activations to
// bf16 and uses _mm512_dpbf16_ps: PyTorch-bf16 numerics, for the CPU expert executor's fast mode.
enum class LinearIsa { Auto, Scalar, Avx2, Avx512, Avx512Bf16 };
const char* linear_isa_name(LinearIsa isa);
// Best fp32-activation ISA this CPU supports.
LinearIsa best_exact_isa();
// Whether `isa` can run on this CPU.
bool isa_supported(LinearIsa isa);

// y[t, o] = sum_k x[t, k] * W[o, k]; x [T, W.cols], y [T, W.rows], both contiguous.
// Rows of W are split over the pool's threads. Non-bf16 weights take a generic scalar path.
void linear(const float* x, int T, const Matrix& W, float* y, ThreadPool* pool, LinearIsa isa = LinearIsa::Auto);
// The same on rows [o0, o1) only, single-threaded (the building block of fused kernels); xb is x
// rounded to bf16 ([T, K]), needed only for Avx512Bf16.
void linear_rows(const float* x, const uint16_t* xb, int T, const Matrix& W, int o0, int o1, float* y, LinearIsa isa);

// ---- elementwise ---------------------------------------------------------------------------
// out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * w; out may equal x. Row stride `stride` (>= n).
void rmsnorm(const float* x, int T, int n, int stride, const float* w, float eps, float* out, int out_stride);
// gate[i] = silu(gate[i]) * up[i]
void silu_mul(float* gate, const float* up, int64_t n);
// out[t] = embed[ids[t]] as fp32; throws naming the id when out of [0, vocab).
void embedding(const Matrix& embed, const int32_t* ids, int T, float* out);

// ---- RoPE (YaRN) ---------------------------------------------------------------------------
// Frequencies and cos/sin scale of the rotary part, derived exactly as transformers'
// _compute_yarn_parameters / _compute_default_rope_parameters do.
struct RopeTable {
  int dim = 0;                  // qk_rope_head_dim
  std::vector<float> inv_freq;  // [dim / 2]
  float attention_factor = 1.f; // multiplies cos and sin
};
RopeTable make_rope_table(const ModelConfig& config);
// Softmax scale of MLA: qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)^2 under YaRN.
float attention_softmax_scale(const ModelConfig& config);
// Rotates one `dim`-vector in place at position `pos`. The checkpoint keeps rotary pairs
// interleaved: pair i is (v[2i], v[2i+1]), rotated as the complex number v[2i] + i v[2i+1].
void rope_interleaved(float* v, int pos, const RopeTable& table);

// ---- MLA attention on the compact cache ----------------------------------------------------
struct MlaDims {
  int heads = 0, nope = 0, rope = 0, v = 0, kv_lora = 0;
  float scale = 1.f;
};
// One query token against ctx cached tokens. q [heads, nope + rope] (q_pe rotated); cache rows
// [kv_lora | rope] with stride `cache_stride`; kv_b fp32 [heads * (nope + v), kv_lora];
// out [heads, v]. Absorbed form: scores = (W_kb^T q_nope) . c_kv + q_pe . k_pe, values W_vb (P c_kv).
// scratch: at least kv_lora * 2 + ctx floats.
void mla_attend_head(const float* q_head, const float* cache, int cache_stride, int ctx, const float* kv_b,
                     const MlaDims& d, int head, float* out_head, float* scratch);

// ---- MoE routing ---------------------------------------------------------------------------
// scores = softmax(router_logits[t]); the top-k experts by score (greedy, ties to the lower index);
// weights = the scores themselves times routed_scaling_factor, or renormalised to sum 1 when
// norm_topk_prob (and k > 1), as DeepSeek-V2's MoEGate does. idx/weight: [T, k], by descending score.
void route_topk(const float* router_logits, int T, int n_experts, int k, bool norm_topk_prob,
                double routed_scaling_factor, int32_t* idx, float* weight);

// ---- MLP / expert FFN ----------------------------------------------------------------------
struct FfnScratch {
  std::vector<float> h;         // [T, d_ff] silu(gate) * up
  std::vector<float> up;        // [T, d_ff]
  std::vector<uint16_t> xb;     // [T, hidden] bf16 copy of x (Avx512Bf16 only)
  std::vector<uint16_t> hb;     // [T, d_ff]
  std::vector<float> xr;        // [T, hidden] x rounded to bf16 values (quantized experts under Avx512Bf16; mlp_forward_gpu_order's lane layout)
};
// out[t] (+)= down(silu(gate x[t]) * up x[t]); accumulate adds scale * result into out.
// Gate and up rows are computed together per thread (one pass over the pool), then down.
void mlp_forward(const float* x, int T, const MlpWeights& w, float* out, bool accumulate, float scale,
                 ThreadPool* pool, FfnScratch& scratch, LinearIsa isa = LinearIsa::Auto);
// The same FFN for bf16 weights, rounded exactly as the CUDA decode expert kernel (expert_ffn_decode.cu)
// rounds it: its summation order and its SiLU (moe/gpu_order_math.h), so a missed expert computed here gives
// the GPU's bits (`--miss cpu|hybrid` then change no logit; src/kernels/expert_gpu_order.h says how).
// Needs hidden % 256 == 0 and d_ff % 8 == 0; x is read rounded to bf16, as the GPU holds it. vectorized:
// the AVX-512 version (gpu_order_vectorized() says whether this CPU has it), else the scalar reference.
bool gpu_order_vectorized();
// Its SiLU (moe/gpu_order_math.h), compiled as the kernel is.
float gpu_order_silu(float g);
void mlp_forward_gpu_order(const float* x, int T, const MlpWeights& w, float* out, bool accumulate, float scale,
                           ThreadPool* pool, FfnScratch& scratch, bool vectorized);

// ---- sampling ------------------------------------------------------------------------------
// A small, fully specified generator (splitmix64 seeding + xoshiro256**) so seeded sampling gives
// the same tokens on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next();
  double uniform();  // [0, 1), 53 bits
 private:
  uint64_t s_[4];
};
struct SamplingParams {
  bool greedy = true;
  float temperature = 1.f;  // > 0
  float top_p = 1.f;        // (0, 1]
};
// Greedy: the arg-max (lowest index on ties). Otherwise softmax(logits / T), keep the smallest set
// of most likely tokens whose mass reaches top_p, renormalise and draw. `work` is scratch.
int32_t sample_token(const float* logits, int vocab, const SamplingParams& p, Rng& rng, std::vector<float>& work,
                     std::vector<int32_t>& order);

}  // namespace moe
