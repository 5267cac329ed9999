// AVX-512F bf16 matmul rows (compiled with -mavx512f -mavx512bw -mfma; called only when cpuid says so).
// bf16 -> fp32 is a zero-extend and a 16-bit shift; activations stay fp32.
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

inline __m512 load16_bf16(const uint16_t* p) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

template <int NT>
void row_block(const float* x, int K, const uint16_t* w, float* y, int O) {
  __m512 a0[NT], a1[NT];
  for (int j = 0; j < NT; ++j) a0[j] = a1[j] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512 w0 = load16_bf16(w + k), w1 = load16_bf16(w + k + 16);
    for (int j = 0; j < NT; ++j) {
      const float* xr = x + static_cast<size_t>(j) * K + k;
      a0[j] = _mm512_fmadd_ps(_mm512_loadu_ps(xr), w0, a0[j]);
      a1[j] = _mm512_fmadd_ps(_mm512_loadu_ps(xr + 16), w1, a1[j]);
    }
  }
  for (; k + 16 <= K; k += 16) {
    const __m512 w0 = load16_bf16(w + k);
    for (int j = 0; j < NT; ++j) a0[j] = _mm512_fmadd_ps(_mm512_loadu_ps(x + static_cast<size_t>(j) * K + k), w0, a0[j]);
  }
  for (int j = 0; j < NT; ++j) {
    float s = hsum(_mm512_add_ps(a0[j], a1[j]));
    const float* xr = x + static_cast<size_t>(j) * K;
    for (int kk = k; kk < K; ++kk) s += xr[kk] * widen1(w[kk]);
    y[static_cast<size_t>(j) * O] = s;
  }
}

}  // namespace

void linear_rows_bf16_avx512(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
  for (int o = o0; o < o1; ++o) {
    const uint16_t* w = W + static_cast<size_t>(o) * K;
    int t = 0;
    for (; t + 4 <= T; t += 4) row_block<4>(x + static_cast<size_t>(t) * K, K, w, y + static_cast<size_t>(t) * O + o, O);
    const float* xr = x + static_cast<size_t>(t) * K;
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
