// Quantized expert kernels: the dispatch of linear_rows_q to the per-ISA row kernels (qlinear_simd.h)
// and expert_ffn_q_forward, which is mlp_forward (src/kernels/mlp.cpp) with the quantized rows: the
// same two passes over the pool, grain and rounding, so only the weights differ.
#include "moe/quant/expert_kernels.h"

#include <algorithm>
#include <string>

#include "moe/error.h"
#include "../kernels/ffn_rows.h"
#include "qlinear_simd.h"

namespace moe::quant {

namespace {

// The row kernel that runs for `isa` (Avx512Bf16: the Avx512 one, see the header).
LinearIsa kernel_isa(LinearIsa isa) {
  if (isa == LinearIsa::Auto) return best_exact_isa();
  if (!isa_supported(isa)) throw Error(std::string("quantized expert kernel ") + linear_isa_name(isa) + " is not supported by this CPU");
  return isa == LinearIsa::Avx512Bf16 ? LinearIsa::Avx512 : isa;
}

void rows_q8(const float* x, int T, const MatrixLayout& M, const uint8_t* blob, int o0, int o1, float* y, LinearIsa isa) {
  const int8_t* q = reinterpret_cast<const int8_t*>(blob + M.q);
  const float* s = reinterpret_cast<const float*>(blob + M.scale);
  switch (isa) {
    case LinearIsa::Avx512: linear_rows_q8_avx512(x, T, M.cols, q, s, o0, o1, y, M.rows); break;
    case LinearIsa::Avx2: linear_rows_q8_avx2(x, T, M.cols, q, s, o0, o1, y, M.rows); break;
    default: linear_rows_q8_scalar(x, T, M.cols, q, s, o0, o1, y, M.rows);
  }
}

void rows_q4(const float* x, int T, const MatrixLayout& M, int group, const uint8_t* blob, int o0, int o1, float* y, LinearIsa isa) {
  const uint8_t* q = blob + M.q;
  const uint16_t* s = reinterpret_cast<const uint16_t*>(blob + M.scale);
  const uint16_t* z = reinterpret_cast<const uint16_t*>(blob + M.zero);
  if (isa == LinearIsa::Avx512 && group % kQ4ChunkAvx512 == 0) {
    linear_rows_q4_avx512(x, T, M.cols, q, s, z, group, o0, o1, y, M.rows);
  } else if ((isa == LinearIsa::Avx512 || isa == LinearIsa::Avx2) && group % kQ4ChunkAvx2 == 0) {
    linear_rows_q4_avx2(x, T, M.cols, q, s, z, group, o0, o1, y, M.rows);  // an AVX-512 CPU runs AVX2 too
  } else {
    linear_rows_q4_scalar(x, T, M.cols, q, s, z, group, o0, o1, y, M.rows);
  }
}

void rows_resolved(const float* x, int T, const ExpertLayout& L, const uint8_t* blob, Part part, int o0, int o1, float* y, LinearIsa isa) {
  const MatrixLayout& M = part_layout(L, part);
  if (o0 < 0 || o1 > M.rows || o0 > o1) {
    throw Error("linear_rows_q: rows [" + std::to_string(o0) + ", " + std::to_string(o1) + ") outside [0, " + std::to_string(M.rows) + ")");
  }
  switch (L.dtype) {
    case ExpertDType::INT8: rows_q8(x, T, M, blob, o0, o1, y, isa); break;
    case ExpertDType::INT4: rows_q4(x, T, M, L.group, blob, o0, o1, y, isa); break;
    default: {
      const Matrix W{blob + M.q, DType::BF16, M.rows, M.cols};
      linear_rows(x, nullptr, T, W, o0, o1, y, isa);
    }
  }
}

}  // namespace

void linear_rows_q(const float* x, int T, const ExpertLayout& L, const uint8_t* blob, Part part, int o0, int o1, float* y,
                   LinearIsa isa) {
  if (!blob) throw Error("linear_rows_q: no expert blob");
  rows_resolved(x, T, L, blob, part, o0, o1, y, kernel_isa(isa));
}

void expert_ffn_q_forward(const float* x, int T, const ExpertLayout& L, const uint8_t* blob, float* out, bool accumulate, float scale,
                          ThreadPool* pool, FfnScratch& s, LinearIsa isa) {
  if (T <= 0) return;
  if (!blob) throw Error("expert_ffn_q_forward: no expert blob");
  const int F = L.d_ff, H = L.hidden;
  if (isa == LinearIsa::Auto) isa = best_exact_isa();
  const LinearIsa k = kernel_isa(isa);
  const bool bf16x = isa == LinearIsa::Avx512Bf16;  // mlp_forward's bf16 activations
  const size_t tf = static_cast<size_t>(T) * F, th = static_cast<size_t>(T) * H;
  if (s.h.size() < tf) s.h.resize(tf);
  if (s.up.size() < tf) s.up.resize(tf);
  const float* xin = x;
  if (bf16x) {
    if (s.xr.size() < th) s.xr.resize(th);
    for (size_t i = 0; i < th; ++i) s.xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
    xin = s.xr.data();
  }
  const int64_t grain = detail::ffn_grain(T);
  auto phase1 = [&](int64_t o0, int64_t o1) {
    const int a = static_cast<int>(o0), b = static_cast<int>(o1);
    rows_resolved(xin, T, L, blob, Part::Gate, a, b, s.h.data(), k);
    rows_resolved(xin, T, L, blob, Part::Up, a, b, s.up.data(), k);
    for (int t = 0; t < T; ++t) silu_mul(s.h.data() + static_cast<size_t>(t) * F + a, s.up.data() + static_cast<size_t>(t) * F + a, b - a);
  };
  if (pool) pool->parallel_for(F, grain, phase1);
  else phase1(0, F);

  if (bf16x) {
    for (size_t i = 0; i < tf; ++i) s.h[i] = bf16_to_f32(f32_to_bf16(s.h[i]));
  }
  float* y = out;
  if (accumulate) {  // down writes into up's storage (dead by now), then adds into out
    if (s.up.size() < th) s.up.resize(th);
    y = s.up.data();
  }
  auto phase2 = [&](int64_t o0, int64_t o1) {
    rows_resolved(s.h.data(), T, L, blob, Part::Down, static_cast<int>(o0), static_cast<int>(o1), y, k);
    detail::ffn_store_rows(y, out, T, H, o0, o1, accumulate, scale);
  };
  if (pool) pool->parallel_for(H, grain, phase2);
  else phase2(0, H);
}

}  // namespace moe::quant
