// mlp_forward_gpu_order (moe/kernels.h): a bf16 routed expert on the CPU that gives the bits of the CUDA
// decode kernel, so that `--miss cpu|hybrid` leave the logits of the all-resident run unchanged. The order of
// operations is described in expert_gpu_order.h; this file has the scalar reference, the activations'
// transposition and the threading; expert_gpu_order_avx512.cpp the vector version (picked when the CPU has
// AVX-512BW; native/tests/kernel_tests.cpp holds the two to the same bits, tests/cuda/tests_ffn.cu holds the
// scalar one to the GPU's). Compiled with -ffp-contract=off: every multiply and add rounds on its own, as
// written, as the CUDA code's explicit fmaf and adds do.
#include <algorithm>
#include <cmath>
#include <string>

#include "expert_gpu_order.h"
#include "ffn_rows.h"
#include "moe/cpu_features.h"
#include "moe/error.h"
#include "moe/gpu_order_math.h"
#include "moe/kernels.h"

namespace moe {
namespace detail {

namespace {

// One chunk's dot product: fmaf from 0 over its 8 elements (dot8 of expert_ffn_decode.cu).
float dot8(const uint16_t* w, const float* act_t, int l) {
  float s = 0.f;
  for (int j = 0; j < 8; ++j) s = std::fma(bf16_to_f32(w[j]), act_t[j * 32 + l], s);
  return s;
}

}  // namespace

void gpu_order_gate_up_scalar(const float* xt, int T, const uint16_t* wg, const uint16_t* wu, const GpuOrderDims& d, int o0, int o1, float* h) {
  float sg[32], su[32];
  for (int i = o0; i < o1; ++i) {
    const uint16_t* g = wg + static_cast<size_t>(i) * d.hidden;
    const uint16_t* u = wu + static_cast<size_t>(i) * d.hidden;
    for (int t = 0; t < T; ++t) {
      const float* x = xt + static_cast<size_t>(t) * d.hidden;
      for (int l = 0; l < 32; ++l) {
        sg[l] = 0.f;
        su[l] = 0.f;
        for (int c = 0; c < d.nch; ++c) {
          const size_t at = static_cast<size_t>(8) * (l + 32 * c);
          sg[l] += dot8(g + at, x + static_cast<size_t>(c) * 256, l);
          su[l] += dot8(u + at, x + static_cast<size_t>(c) * 256, l);
        }
      }
      const float gate = gpu_order_warp_sum(sg), up = gpu_order_warp_sum(su);
      h[static_cast<size_t>(t) * d.d_ff + i] = bf16_to_f32(f32_to_bf16(gpu_order::mul(gpu_order::silu(gate), up)));
    }
  }
}

void gpu_order_down_scalar(const float* ht, int T, const uint16_t* wd, const GpuOrderDims& d, int o0, int o1, float* y) {
  const int chunks = d.d_ff / 8;
  float s[32];
  for (int r = o0; r < o1; ++r) {
    const uint16_t* w = wd + static_cast<size_t>(r) * d.d_ff;
    for (int t = 0; t < T; ++t) {
      const float* hv = ht + static_cast<size_t>(t) * d.dch * 256;
      for (int l = 0; l < 32; ++l) {
        s[l] = 0.f;
        for (int c = 0; c < d.dch; ++c) {
          if (l + 32 * c < chunks) s[l] += dot8(w + static_cast<size_t>(8) * (l + 32 * c), hv + static_cast<size_t>(c) * 256, l);
        }
      }
      y[static_cast<size_t>(t) * d.hidden + r] = gpu_order_warp_sum(s);
    }
  }
}

}  // namespace detail

namespace {

// a [T, width] (rounded to bf16, as the GPU reads it) into the lane layout, rounds x 256 floats per token.
void transpose_to_lanes(const float* a, int T, int width, int rounds, float* out) {
  for (int t = 0; t < T; ++t) {
    const float* row = a + static_cast<size_t>(t) * width;
    float* o = out + static_cast<size_t>(t) * rounds * 256;
    for (int c = 0; c < rounds; ++c) {
      for (int j = 0; j < 8; ++j) {
        for (int l = 0; l < 32; ++l) {
          const int e = 8 * (l + 32 * c) + j;
          o[(c * 8 + j) * 32 + l] = e < width ? bf16_to_f32(f32_to_bf16(row[e])) : 0.f;
        }
      }
    }
  }
}

}  // namespace

bool gpu_order_vectorized() { return cpu_features().avx512f; }

float gpu_order_silu(float g) { return gpu_order::silu(g); }

void mlp_forward_gpu_order(const float* x, int T, const MlpWeights& w, float* out, bool accumulate, float scale, ThreadPool* pool, FfnScratch& s,
                           bool vectorized) {
  if (T <= 0) return;
  const int F = w.gate.rows, H = w.gate.cols;
  if (w.up.rows != F || w.up.cols != H || w.down.rows != H || w.down.cols != F) throw Error("mlp_forward_gpu_order: gate/up/down shapes do not fit together");
  if (w.gate.dtype != DType::BF16 || w.up.dtype != DType::BF16 || w.down.dtype != DType::BF16) throw Error("mlp_forward_gpu_order: the weights must be bf16");
  if (H % 256 != 0 || F % 8 != 0) {
    throw Error("mlp_forward_gpu_order: hidden " + std::to_string(H) + " must be a multiple of 256 and d_ff " + std::to_string(F) +
                " of 8 (the CUDA decode kernel's shapes)");
  }
  if (vectorized && !gpu_order_vectorized()) throw Error("mlp_forward_gpu_order: the vector version needs AVX-512BW");
  detail::GpuOrderDims d;
  d.hidden = H;
  d.d_ff = F;
  d.nch = H / 256;
  d.dch = (F + 255) / 256;
  const size_t tx = static_cast<size_t>(T) * H, th = static_cast<size_t>(T) * d.dch * 256, tf = static_cast<size_t>(T) * F;
  if (s.xr.size() < tx) s.xr.resize(tx);
  if (s.up.size() < std::max(th, tx)) s.up.resize(std::max(th, tx));
  if (s.h.size() < tf) s.h.resize(tf);
  transpose_to_lanes(x, T, H, d.nch, s.xr.data());
  const uint16_t* wg = static_cast<const uint16_t*>(w.gate.data);
  const uint16_t* wu = static_cast<const uint16_t*>(w.up.data);
  const uint16_t* wd = static_cast<const uint16_t*>(w.down.data);
  const int64_t grain = detail::ffn_grain(T);
  auto phase1 = [&](int64_t o0, int64_t o1) {
    if (vectorized) detail::gpu_order_gate_up_avx512(s.xr.data(), T, wg, wu, d, static_cast<int>(o0), static_cast<int>(o1), s.h.data());
    else detail::gpu_order_gate_up_scalar(s.xr.data(), T, wg, wu, d, static_cast<int>(o0), static_cast<int>(o1), s.h.data());
  };
  if (pool) pool->parallel_for(F, grain, phase1);
  else phase1(0, F);

  transpose_to_lanes(s.h.data(), T, F, d.dch, s.up.data());  // h is bf16-valued already
  // down writes into xr's storage when accumulating or scaling (x is dead by now), else straight into out.
  float* y = (accumulate || scale != 1.0f) ? s.xr.data() : out;
  auto phase2 = [&](int64_t o0, int64_t o1) {
    if (vectorized) detail::gpu_order_down_avx512(s.up.data(), T, wd, d, static_cast<int>(o0), static_cast<int>(o1), y);
    else detail::gpu_order_down_scalar(s.up.data(), T, wd, d, static_cast<int>(o0), static_cast<int>(o1), y);
    detail::ffn_store_rows(y, out, T, H, o0, o1, accumulate, scale);
  };
  if (pool) pool->parallel_for(H, grain, phase2);
  else phase2(0, H);
}

}  // namespace moe
