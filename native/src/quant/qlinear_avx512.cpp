// AVX-512F quantized matmul rows (compiled with -mavx512f -mavx512bw -mfma; called only when cpuid says
// so). int8: a chunk of 32 weights is sign-extended and converted 16 at a time (qlinear_tiles.h).
// int4 has its own loop, a table lookup: per group the 16 possible weights (q - zero) * scale (exactly
// dequantize_row's fp32 values) sit in one register, and _mm512_permutexvar_ps picks them by the low 4
// bits of each 32-bit lane. 16 bytes of a chunk zero-extended to 16 lanes hold the even elements'
// nibbles in bits 0..3 and the odd ones' in bits 4..7 (shifted down by 4 for the second lookup), so a
// chunk of 32 weights costs one widening, one shift and two lookups. The lookups give the even and the
// odd elements of the chunk, so x is de-interleaved the same way first (per call, into a per-thread
// buffer: T * K floats, small beside the rows * K weights of a call).
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

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
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
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

// x [T, K] -> xd [T, K] with each chunk of 32 reordered as its 16 even then its 16 odd elements.
void deinterleave(const float* x, int T, int K, float* xd) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int t = 0; t < T; ++t) {
    for (int k = 0; k < K; k += 32) {
      const float* p = x + static_cast<size_t>(t) * K + k;
      const __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
      float* o = xd + static_cast<size_t>(t) * K + k;
      _mm512_storeu_ps(o, _mm512_permutex2var_ps(a, even, b));
      _mm512_storeu_ps(o + 16, _mm512_permutex2var_ps(a, odd, b));
    }
  }
}

// y[j * O] = sum_k x[j * K + k] * W[o, k] for the NT tokens of one block; xd de-interleaved. Two
// accumulator pairs for NT <= 2 (kPairs, qlinear_tiles.h).
template <int NT>
void q4_lut_block(const float* xd, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group, float* y, int O) {
  constexpr int P = kPairs<NT>;
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 a[P][2][NT];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < NT; ++j) a[p][0][j] = a[p][1][j] = _mm512_setzero_ps();
  const int groups = K / group;
  __m512 sv = _mm512_setzero_ps(), zv = sv;  // fp32 scales / zeros of groups [g0, g0 + 16)
  for (int g = 0; g < groups; ++g) {
    const int gi = g & 15;
    if (gi == 0) {  // the next 16 groups' fp16 scale and zero, widened at once
      uint16_t sb[16] = {}, zb[16] = {};
      const int n = groups - g < 16 ? groups - g : 16;
      std::memcpy(sb, scale + g, static_cast<size_t>(n) * 2);
      std::memcpy(zb, zero + g, static_cast<size_t>(n) * 2);
      sv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb)));
      zv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb)));
    }
    const __m512i lane = _mm512_set1_epi32(gi);
    const __m512 lut = _mm512_mul_ps(_mm512_sub_ps(iota, _mm512_permutexvar_ps(lane, zv)), _mm512_permutexvar_ps(lane, sv));
    auto chunk = [&](int k, __m512(&acc)[2][NT]) {
      const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k / 2)));
      const __m512 we = _mm512_permutexvar_ps(b, lut), wo = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), lut);
      for (int j = 0; j < NT; ++j) {
        const float* xr = xd + static_cast<size_t>(j) * K + k;
        acc[0][j] = _mm512_fmadd_ps(_mm512_loadu_ps(xr), we, acc[0][j]);
        acc[1][j] = _mm512_fmadd_ps(_mm512_loadu_ps(xr + 16), wo, acc[1][j]);
      }
    };
    const int k_end = (g + 1) * group;
    int k = g * group;
    for (; k + P * 32 <= k_end; k += P * 32) {
      for (int p = 0; p < P; ++p) chunk(k + p * 32, a[p]);
    }
    for (; k < k_end; k += 32) chunk(k, a[0]);
  }
  for (int j = 0; j < NT; ++j) {
    __m512 v = _mm512_add_ps(a[0][0][j], a[0][1][j]);
    if constexpr (P == 2) v = _mm512_add_ps(v, _mm512_add_ps(a[1][0][j], a[1][1][j]));
    y[static_cast<size_t>(j) * O] = _mm512_reduce_add_ps(v);
  }
}

}  // namespace

void linear_rows_q8_avx512(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O) {
  q8_rows<Avx512QOps>(x, T, K, q, scale, o0, o1, y, O);
}

void linear_rows_q4_avx512(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group,
                           int o0, int o1, float* y, int O) {
  thread_local std::vector<float> xd;  // grows to the largest T * K once per thread
  if (xd.size() < static_cast<size_t>(T) * K) xd.resize(static_cast<size_t>(T) * K);
  deinterleave(x, T, K, xd.data());
  const int groups = K / group;
  for (int o = o0; o < o1; ++o) {
    const uint8_t* row = q + static_cast<size_t>(o) * K / 2;
    const uint16_t* s = scale + static_cast<size_t>(o) * groups;
    const uint16_t* z = zero + static_cast<size_t>(o) * groups;
    token_blocks<Avx512QOps>(T, [&](auto nt, int t) {
      q4_lut_block<decltype(nt)::value>(xd.data() + static_cast<size_t>(t) * K, K, row, s, z, group, y + static_cast<size_t>(t) * O + o, O);
    });
  }
}

}  // namespace moe::quant
