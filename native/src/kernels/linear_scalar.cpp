// Portable bf16 matmul rows: eight explicit partial sums per token so the compiler can vectorise
// without reassociating (no -ffast-math needed), four tokens per pass over a weight row.
#include <cstring>

#include "linear_simd.h"

namespace moe {

namespace {
inline float widen(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace

void linear_rows_bf16_scalar(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
  constexpr int kLanes = 8, kTokens = 4;
  const int k_main = K - K % kLanes;
  for (int o = o0; o < o1; ++o) {
    const uint16_t* w = W + static_cast<size_t>(o) * K;
    for (int t0 = 0; t0 < T; t0 += kTokens) {
      const int nt = T - t0 < kTokens ? T - t0 : kTokens;
      float acc[kTokens][kLanes] = {};
      for (int k = 0; k < k_main; k += kLanes) {
        float wf[kLanes];
        for (int i = 0; i < kLanes; ++i) wf[i] = widen(w[k + i]);
        for (int j = 0; j < nt; ++j) {
          const float* xr = x + static_cast<size_t>(t0 + j) * K + k;
          for (int i = 0; i < kLanes; ++i) acc[j][i] += xr[i] * wf[i];
        }
      }
      for (int j = 0; j < nt; ++j) {
        const float* xr = x + static_cast<size_t>(t0 + j) * K;
        float s = 0.f;
        for (int i = 0; i < kLanes; ++i) s += acc[j][i];
        for (int k = k_main; k < K; ++k) s += xr[k] * widen(w[k]);
        y[static_cast<size_t>(t0 + j) * O + o] = s;
      }
    }
  }
}

}  // namespace moe
