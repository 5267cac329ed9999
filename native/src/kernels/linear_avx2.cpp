// AVX2 + FMA bf16 matmul rows (compiled with -mavx2 -mfma; called only when cpuid says so).
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

inline __m256 load8_bf16(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

template <int NT>
void row_block(const float* x, int K, const uint16_t* w, float* y, int O) {
  __m256 a0[NT], a1[NT];
  for (int j = 0; j < NT; ++j) a0[j] = a1[j] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m256 w0 = load8_bf16(w + k), w1 = load8_bf16(w + k + 8);
    for (int j = 0; j < NT; ++j) {
      const float* xr = x + static_cast<size_t>(j) * K + k;
      a0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xr), w0, a0[j]);
      a1[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 8), w1, a1[j]);
    }
  }
  for (; k + 8 <= K; k += 8) {
    const __m256 w0 = load8_bf16(w + k);
    for (int j = 0; j < NT; ++j) a0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + static_cast<size_t>(j) * K + k), w0, a0[j]);
  }
  for (int j = 0; j < NT; ++j) {
    float s = hsum(_mm256_add_ps(a0[j], a1[j]));
    const float* xr = x + static_cast<size_t>(j) * K;
    for (int kk = k; kk < K; ++kk) s += xr[kk] * widen1(w[kk]);
    y[static_cast<size_t>(j) * O] = s;
  }
}

}  // namespace

void linear_rows_bf16_avx2(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
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
