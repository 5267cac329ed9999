// AVX-512F quantized matmul rows (compiled with -mavx512f -mavx512bw -mfma; called only when cpuid says
// so). A chunk is 32 weights: int8 sign-extended 16 at a time; int4 16 bytes split into low and high
// nibbles and interleaved back into element order (unpacklo/hi_epi8) before widening.
#include <immintrin.h>

#include <cstdint>

#include "qlinear_simd.h"
#include "qlinear_tiles.h"

namespace moe::quant {

namespace {

struct Avx512QOps {
  using V = __m512;
  static constexpr int kLanes = 16, kTokens = 8;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float f) { return _mm512_set1_ps(f); }
  static V loadx(const float* p) { return _mm512_loadu_ps(p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static float reduce(V a0, V a1) { return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)); }
  static void q8(const int8_t* p, V& w0, V& w1) {
    w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
  }
  static void q4(const uint8_t* p, V& w0, V& w1) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    w0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
    w1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(lo, hi)));
  }
};

}  // namespace

void linear_rows_q8_avx512(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O) {
  q8_rows<Avx512QOps>(x, T, K, q, scale, o0, o1, y, O);
}

void linear_rows_q4_avx512(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group,
                           int o0, int o1, float* y, int O) {
  q4_rows<Avx512QOps>(x, T, K, q, scale, zero, group, o0, o1, y, O);
}

}  // namespace moe::quant
