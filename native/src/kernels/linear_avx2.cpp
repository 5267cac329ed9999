// AVX2 + FMA bf16 matmul rows (compiled with -mavx2 -mfma; called only when cpuid says so).
// bf16 -> fp32 is a zero-extend and a 16-bit shift; activations stay fp32. The tiling is
// linear_tiles.h's, instantiated here so that it is compiled with this file's flags only.
#include <immintrin.h>

#include <cstdint>

#include "linear_simd.h"
#include "linear_tiles.h"

namespace moe {

namespace {

struct Avx2Ops {
  using In = float;
  using Acc = __m256;
  using Wv = __m256;
  static constexpr int kStep = 8;
  static Acc zero() { return _mm256_setzero_ps(); }
  static Wv load_w(const uint16_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static Acc madd(Acc acc, const float* x, Wv w) { return _mm256_fmadd_ps(_mm256_loadu_ps(x), w, acc); }
  static float reduce(Acc a0, Acc a1) {
    const __m256 v = _mm256_add_ps(a0, a1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
  }
  static float in_f32(float v) { return v; }
};

}  // namespace

void linear_rows_bf16_avx2(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
  linear_rows_tiled<Avx2Ops>(x, T, K, W, o0, o1, y, O);
}

}  // namespace moe
