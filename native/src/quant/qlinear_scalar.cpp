// Portable quantized matmul rows (any group size): weights are dequantized 64 at a time into a small
// buffer with dequantize_row's arithmetic, then summed with eight explicit partial sums per token (as
// linear_scalar.cpp, so the compiler may vectorise without reassociating), four tokens per pass.
#include <algorithm>
#include <cstddef>

#include "moe/tensor.h"
#include "qlinear_simd.h"

namespace moe::quant {

namespace {

constexpr int kLanes = 8, kTokens = 4, kChunk = 64;

// y[t * O] = scale * sum_k x[t * K + k] * w(k) for the row whose chunks `decode(k0, n, w)` produces.
template <class Decode>
void scalar_row(const float* x, int T, int K, float scale, float* y, int O, const Decode& decode) {
  float w[kChunk];
  for (int t0 = 0; t0 < T; t0 += kTokens) {
    const int nt = std::min(kTokens, T - t0);
    float acc[kTokens][kLanes] = {};
    float tail[kTokens] = {};
    for (int k0 = 0; k0 < K; k0 += kChunk) {
      const int n = std::min(kChunk, K - k0), n_main = n - n % kLanes;
      decode(k0, n, w);
      for (int j = 0; j < nt; ++j) {
        const float* xr = x + static_cast<size_t>(t0 + j) * K + k0;
        for (int k = 0; k < n_main; k += kLanes) {
          for (int i = 0; i < kLanes; ++i) acc[j][i] += xr[k + i] * w[k + i];
        }
        for (int k = n_main; k < n; ++k) tail[j] += xr[k] * w[k];
      }
    }
    for (int j = 0; j < nt; ++j) {
      float s = tail[j];
      for (int i = 0; i < kLanes; ++i) s += acc[j][i];
      y[static_cast<size_t>(t0 + j) * O] = scale * s;
    }
  }
}

}  // namespace

void linear_rows_q8_scalar(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O) {
  for (int o = o0; o < o1; ++o) {
    const int8_t* row = q + static_cast<size_t>(o) * K;
    scalar_row(x, T, K, scale[o], y + o, O, [&](int k0, int n, float* w) {
      for (int i = 0; i < n; ++i) w[i] = static_cast<float>(row[k0 + i]);
    });
  }
}

void linear_rows_q4_scalar(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group,
                           int o0, int o1, float* y, int O) {
  const int groups = K / group;
  for (int o = o0; o < o1; ++o) {
    const size_t base = static_cast<size_t>(o) * K;
    const uint16_t* sr = scale + static_cast<size_t>(o) * groups;
    const uint16_t* zr = zero + static_cast<size_t>(o) * groups;
    scalar_row(x, T, K, 1.f, y + o, O, [&](int k0, int n, float* w) {
      int g = -1;
      float s = 0.f, z = 0.f;
      for (int i = 0; i < n; ++i) {
        const int c = k0 + i;
        if (c / group != g) {
          g = c / group;
          s = f16_to_f32(sr[g]);
          z = f16_to_f32(zr[g]);
        }
        const size_t idx = base + static_cast<size_t>(c);
        const int qi = (idx & 1) ? (q[idx >> 1] >> 4) : (q[idx >> 1] & 0x0f);
        w[i] = (static_cast<float>(qi) - z) * s;
      }
    });
  }
}

}  // namespace moe::quant
