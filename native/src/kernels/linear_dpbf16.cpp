// AVX512-BF16 matmul rows (compiled with -mavx512f -mavx512bw -mavx512bf16; called only when cpuid
// says so). Activations are bf16 too: each _mm512_dpbf16_ps multiplies 32 bf16 pairs and adds them
// into 16 fp32 lanes. Numerics are PyTorch-bf16-like (activations rounded), not the exact path.
#include <immintrin.h>

#include <cstdint>

#include "linear_simd.h"

namespace moe {

namespace {

inline float widen1(uint16_t v) {
  union {
    uint32_t u;
    float f;
  } c;
  c.u = static_cast<uint32_t>(v) << 16;
  return c.f;
}

inline __m512bh load32_bf16(const uint16_t* p) {
  return (__m512bh)_mm512_loadu_si512(reinterpret_cast<const void*>(p));
}

template <int NT>
void row_block(const uint16_t* x, int K, const uint16_t* w, float* y, int O) {
  __m512 a0[NT], a1[NT];
  for (int j = 0; j < NT; ++j) a0[j] = a1[j] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 64 <= K; k += 64) {
    const __m512bh w0 = load32_bf16(w + k), w1 = load32_bf16(w + k + 32);
    for (int j = 0; j < NT; ++j) {
      const uint16_t* xr = x + static_cast<size_t>(j) * K + k;
      a0[j] = _mm512_dpbf16_ps(a0[j], load32_bf16(xr), w0);
      a1[j] = _mm512_dpbf16_ps(a1[j], load32_bf16(xr + 32), w1);
    }
  }
  for (; k + 32 <= K; k += 32) {
    const __m512bh w0 = load32_bf16(w + k);
    for (int j = 0; j < NT; ++j) a0[j] = _mm512_dpbf16_ps(a0[j], load32_bf16(x + static_cast<size_t>(j) * K + k), w0);
  }
  for (int j = 0; j < NT; ++j) {
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0[j], a1[j]));
    const uint16_t* xr = x + static_cast<size_t>(j) * K;
    for (int kk = k; kk < K; ++kk) s += widen1(xr[kk]) * widen1(w[kk]);
    y[static_cast<size_t>(j) * O] = s;
  }
}

}  // namespace

void linear_rows_bf16_dpbf16(const uint16_t* xb, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
  for (int o = o0; o < o1; ++o) {
    const uint16_t* w = W + static_cast<size_t>(o) * K;
    int t = 0;
    for (; t + 4 <= T; t += 4) row_block<4>(xb + static_cast<size_t>(t) * K, K, w, y + static_cast<size_t>(t) * O + o, O);
    const uint16_t* xr = xb + static_cast<size_t>(t) * K;
    float* yr = y + static_cast<size_t>(t) * O + o;
    switch (T - t) {
      case 3: row_block<3>(xr, K, w, yr, O); break;
      case 2: row_block<2>(xr, K, w, yr, O); break;
      case 1: row_block<1>(xr, K, w, yr, O); break;
      default: break;
    }
  }
}

}  // namespace moe
