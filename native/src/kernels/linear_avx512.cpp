// AVX-512F bf16 matmul rows (compiled with -mavx512f -mavx512bw -mfma; called only when cpuid says so).
// bf16 -> fp32 is a zero-extend and a 16-bit shift; activations stay fp32. The tiling is
// linear_tiles.h's, instantiated here so that it is compiled with this file's flags only.
#include <immintrin.h>

#include <cstdint>

#include "linear_simd.h"
#include "linear_tiles.h"

namespace moe {

namespace {

struct Avx512Ops {
  using In = float;
  using Acc = __m512;
  using Wv = __m512;
  static constexpr int kStep = 16;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Wv load_w(const uint16_t* p) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static Acc madd(Acc acc, const float* x, Wv w) { return _mm512_fmadd_ps(_mm512_loadu_ps(x), w, acc); }
  static float reduce(Acc a0, Acc a1) { return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)); }
  static float in_f32(float v) { return v; }
};

}  // namespace

void linear_rows_bf16_avx512(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
  linear_rows_tiled<Avx512Ops>(x, T, K, W, o0, o1, y, O);
}

}  // namespace moe
