#pragma once
// Scalar float arithmetic that gives the same bits on the host and in a CUDA kernel (issue 12, item 5).
//
// Why: a routed expert computed on the CPU joins the GPU's combine, so where its rounding differs from the
// GPU decode kernel's (summation order, the SiLU's exp) the logits of a `--miss cpu|hybrid` run drift from
// the all-resident run's, and on random weights that drift reaches the 0.1 top-1/top-2 logit gap the issue's
// check allows (reports/bench/offload-h200-2026-12-03b/README.md). The CPU kernel of
// src/kernels/expert_gpu_order.cpp sums in the decode kernel's order; this header gives both the same SiLU.
// CUDA's __expf is a hardware approximation (ex2.approx) a CPU cannot reproduce, so both use exp_gpu_order:
// IEEE operations only (round to nearest), each one explicit, so that no compiler may fuse a multiply and an
// add differently on either side (host files that include this are compiled with -ffp-contract=off).
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MOE_GPU_ORDER_FN __host__ __device__ __forceinline__
#else
#define MOE_GPU_ORDER_FN inline
#endif

namespace moe::gpu_order {

MOE_GPU_ORDER_FN float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MOE_GPU_ORDER_FN float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
MOE_GPU_ORDER_FN float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
MOE_GPU_ORDER_FN float fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
MOE_GPU_ORDER_FN float round_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);  // the default rounding mode: to nearest, ties to even, as rintf
#endif
}

// e^x: x = n ln2 + r (Cody-Waite, two-part ln2), |r| <= ln2 / 2, e^r by its Taylor polynomial of degree 7
// (truncation below 2^-24 relative), times 2^n built from its bits. Within 2 ulp of e^x on [-87, 88];
// 0 below (no subnormals), +inf above.
MOE_GPU_ORDER_FN float exp(float x) {
  if (!(x <= 88.f)) return x != x ? x : INFINITY;
  if (x < -87.f) return 0.f;
  const float n = round_even(mul(x, 1.44269502f));
  float r = fma(n, -0.693145751953125f, x);
  r = fma(n, -1.428606765330187e-6f, r);
  float p = 1.98412698e-4f;        // 1/5040
  p = fma(p, r, 1.38888889e-3f);   // 1/720
  p = fma(p, r, 8.33333333e-3f);   // 1/120
  p = fma(p, r, 4.16666667e-2f);   // 1/24
  p = fma(p, r, 1.66666667e-1f);   // 1/6
  p = fma(p, r, 0.5f);
  p = fma(p, r, 1.f);
  p = fma(p, r, 1.f);
  const int bits = (static_cast<int>(n) + 127) << 23;
#if defined(__CUDA_ARCH__)
  const float scale = __int_as_float(bits);
#else
  float scale;
  std::memcpy(&scale, &bits, 4);
#endif
  return mul(p, scale);
}

// SiLU as the decode expert kernel computes it: g / (1 + e^-g).
MOE_GPU_ORDER_FN float silu(float g) { return div(g, add(1.f, exp(-g))); }

}  // namespace moe::gpu_order
