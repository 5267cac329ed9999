// The AVX-512 version of the GPU-order expert FFN (expert_gpu_order.h): the same operations as the scalar
// reference, 16 lanes of the warp per vector. The weights arrive in memory order (lane l's chunk is 8
// consecutive bf16), so each 256-element round of a row is transposed to the lane layout with two rounds of
// vpermt2w and widened to fp32; then per token a chunk's dot product is 8 fmadds from zero, one per element,
// in element order, as the GPU lane's fmaf chain. Compiled with -mavx512f -mavx512bw -ffp-contract=off.
#include <immintrin.h>

#include <algorithm>

#include "expert_gpu_order.h"
#include "moe/gpu_order_math.h"
#include "moe/tensor.h"

namespace moe::detail {

namespace {

struct Perm {
  __m512i step1[2];  // [lanes 0-7 of a group, j 0-3] and [.., j 4-7] from two registers of 4 lanes x 8 words
  __m512i step2[2];  // [16 lanes, j pair 0 or 1 of a block of 4] from two step-1 results (lanes 0-7, 8-15)
};

Perm make_perm() {
  alignas(64) uint16_t a[2][32], b[2][32];
  for (int p = 0; p < 32; ++p) {
    for (int half = 0; half < 2; ++half) a[half][p] = static_cast<uint16_t>(8 * (p % 8) + 4 * half + p / 8);  // out 8 jj + l <- word 8 l + j
    const int jjj = p / 16, m = p % 16;
    for (int pair = 0; pair < 2; ++pair) {
      const int jj = 2 * pair + jjj;  // j within the block of 4
      b[pair][p] = static_cast<uint16_t>(m < 8 ? 8 * jj + m : 32 + 8 * jj + (m - 8));  // out 16 jjj + m
    }
  }
  Perm r;
  for (int i = 0; i < 2; ++i) {
    r.step1[i] = _mm512_load_si512(a[i]);
    r.step2[i] = _mm512_load_si512(b[i]);
  }
  return r;
}

const Perm& perm() {
  static const Perm p = make_perm();
  return p;
}

inline __m512 widen_lo(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16)); }
inline __m512 widen_hi(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16)); }

// One round of a row (up to 256 bf16 at w; `words` of them valid, a multiple of 8, the rest read as zero)
// into out[j * 2 + half]: element j of lanes 16 half .. 16 half + 15, as fp32.
inline void transpose_round(const uint16_t* w, int words, __m512 out[16]) {
  const Perm& P = perm();
  __m512i R[8];
  for (int q = 0; q < 8; ++q) {
    const int valid = std::clamp(words - 32 * q, 0, 32);
    const __mmask32 m = valid == 32 ? 0xffffffffu : ((1u << valid) - 1u);
    R[q] = _mm512_maskz_loadu_epi16(m, w + 32 * q);
  }
  for (int half = 0; half < 2; ++half) {
    __m512i S[2][2];  // [group of 8 lanes][j block]
    for (int g = 0; g < 2; ++g) {
      for (int blk = 0; blk < 2; ++blk) S[g][blk] = _mm512_permutex2var_epi16(R[4 * half + 2 * g], P.step1[blk], R[4 * half + 2 * g + 1]);
    }
    for (int blk = 0; blk < 2; ++blk) {
      for (int pair = 0; pair < 2; ++pair) {
        const __m512i t = _mm512_permutex2var_epi16(S[0][blk], P.step2[pair], S[1][blk]);
        const int j = 4 * blk + 2 * pair;
        out[j * 2 + half] = widen_lo(t);
        out[(j + 1) * 2 + half] = widen_hi(t);
      }
    }
  }
}

// acc[half] += the round's chunk dot products of one token (act: the round's 256 transposed floats).
inline void round_dot(const __m512 W[16], const float* act, __m512 acc[2]) {
  const __m512 zero = _mm512_setzero_ps();
  for (int half = 0; half < 2; ++half) {
    __m512 s = zero;
    for (int j = 0; j < 8; ++j) s = _mm512_fmadd_ps(W[j * 2 + half], _mm512_loadu_ps(act + j * 32 + 16 * half), s);
    acc[half] = _mm512_add_ps(acc[half], s);
  }
}

inline float lane0_sum(const __m512 acc[2]) {
  alignas(64) float v[32];
  _mm512_store_ps(v, acc[0]);
  _mm512_store_ps(v + 16, acc[1]);
  return gpu_order_warp_sum(v);
}

constexpr int kMaxTokens = 64;  // CudaBackend::kCpuMaxRows

}  // namespace

void gpu_order_gate_up_avx512(const float* xt, int T, const uint16_t* wg, const uint16_t* wu, const GpuOrderDims& d, int o0, int o1, float* h) {
  __m512 G[16], U[16];
  __m512 ag[kMaxTokens][2], au[kMaxTokens][2];
  for (int i0 = o0; i0 < o1; ++i0) {
    const uint16_t* g = wg + static_cast<size_t>(i0) * d.hidden;
    const uint16_t* u = wu + static_cast<size_t>(i0) * d.hidden;
    for (int t0 = 0; t0 < T; t0 += kMaxTokens) {  // tokens in blocks that fit the accumulators
      const int tn = std::min(kMaxTokens, T - t0);
      for (int t = 0; t < tn; ++t) ag[t][0] = ag[t][1] = au[t][0] = au[t][1] = _mm512_setzero_ps();
      for (int c = 0; c < d.nch; ++c) {
        transpose_round(g + 256 * c, 256, G);
        transpose_round(u + 256 * c, 256, U);
        for (int t = 0; t < tn; ++t) {
          const float* act = xt + static_cast<size_t>(t0 + t) * d.hidden + 256 * c;
          round_dot(G, act, ag[t]);
          round_dot(U, act, au[t]);
        }
      }
      for (int t = 0; t < tn; ++t) {
        const float gate = lane0_sum(ag[t]), up = lane0_sum(au[t]);
        h[static_cast<size_t>(t0 + t) * d.d_ff + i0] = bf16_to_f32(f32_to_bf16(gpu_order::mul(gpu_order::silu(gate), up)));
      }
    }
  }
}

void gpu_order_down_avx512(const float* ht, int T, const uint16_t* wd, const GpuOrderDims& d, int o0, int o1, float* y) {
  __m512 W[16];
  __m512 acc[kMaxTokens][2];
  const size_t stride = static_cast<size_t>(d.dch) * 256;
  for (int r = o0; r < o1; ++r) {
    const uint16_t* w = wd + static_cast<size_t>(r) * d.d_ff;
    for (int t0 = 0; t0 < T; t0 += kMaxTokens) {
      const int tn = std::min(kMaxTokens, T - t0);
      for (int t = 0; t < tn; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
      for (int c = 0; c < d.dch; ++c) {
        // Lanes past the row's last chunk read zeros and add +0 to a sum that is never -0 (it starts at +0
        // and only ever adds), which leaves it unchanged, as the GPU's predicated-off lanes do.
        transpose_round(w + 256 * c, std::min(256, d.d_ff - 256 * c), W);
        for (int t = 0; t < tn; ++t) round_dot(W, ht + static_cast<size_t>(t0 + t) * stride + 256 * c, acc[t]);
      }
      for (int t = 0; t < tn; ++t) y[static_cast<size_t>(t0 + t) * d.hidden + r] = lane0_sum(acc[t]);
    }
  }
}

}  // namespace moe::detail
