// AVX512-BF16 matmul rows (compiled with -mavx512f -mavx512bw -mavx512bf16; called only when cpuid
// says so). Activations are bf16 too: each _mm512_dpbf16_ps multiplies 32 bf16 pairs and adds them
// into 16 fp32 lanes. Numerics are PyTorch-bf16-like (activations rounded), not the exact path.
// The tiling is linear_tiles.h's, instantiated here so that it is compiled with this file's flags only.
#include <immintrin.h>

#include <cstdint>

#include "linear_simd.h"
#include "linear_tiles.h"

namespace moe {

namespace {

struct Dpbf16Ops {
  using In = uint16_t;
  using Acc = __m512;
  using Wv = __m512bh;
  static constexpr int kStep = 32;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Wv load_w(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(reinterpret_cast<const void*>(p)); }
  static Acc madd(Acc acc, const uint16_t* x, Wv w) { return _mm512_dpbf16_ps(acc, load_w(x), w); }
  static float reduce(Acc a0, Acc a1) { return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)); }
  static float in_f32(uint16_t v) { return bf16_bits_to_f32(v); }
};

}  // namespace

void linear_rows_bf16_dpbf16(const uint16_t* xb, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
  linear_rows_tiled<Dpbf16Ops>(xb, T, K, W, o0, o1, y, O);
}

}  // namespace moe
