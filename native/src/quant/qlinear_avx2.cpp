// AVX2 + FMA quantized matmul rows (compiled with -mavx2 -mfma; called only when cpuid says so). A chunk
// is 16 weights: int8 sign-extended 8 at a time; int4 8 bytes split into low and high nibbles and
// interleaved back into element order (unpacklo_epi8) before widening.
#include <immintrin.h>

#include <cstdint>

#include "qlinear_simd.h"
#include "qlinear_tiles.h"

namespace moe::quant {

namespace {

struct Avx2QOps {
  using V = __m256;
  static constexpr int kLanes = 8, kTokens = 4;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float f) { return _mm256_set1_ps(f); }
  static V loadx(const float* p) { return _mm256_loadu_ps(p); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static float reduce(V a0, V a1) {
    const __m256 v = _mm256_add_ps(a0, a1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
  }
  static void q8(const int8_t* p, V& w0, V& w1) {
    w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8))));
  }
  static void q4(const uint8_t* p, V& w0, V& w1) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_set1_epi8(0x0f);
    const __m128i e = _mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m));  // 16 nibbles in order
    w0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e));
    w1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e, 8)));
  }
};

}  // namespace

void linear_rows_q8_avx2(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O) {
  q8_rows<Avx2QOps>(x, T, K, q, scale, o0, o1, y, O);
}

void linear_rows_q4_avx2(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group,
                         int o0, int o1, float* y, int O) {
  q4_rows<Avx2QOps>(x, T, K, q, scale, zero, group, o0, o1, y, O);
}

}  // namespace moe::quant
