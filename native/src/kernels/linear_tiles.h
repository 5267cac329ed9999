#pragma once
// The tiling of the SIMD bf16 matmul rows, written once and instantiated by each per-ISA file with its
// vector operations. For one weight row o, tokens go in blocks of 4 (then 3, 2 or 1 for the rest); each
// block runs two accumulators per token over K in steps of 2 * Ops::kStep, one more step of kStep, and
// a scalar tail, so a weight vector is loaded once per block of tokens.
//
// Include this header ONLY from a per-ISA translation unit (linear_avx2.cpp, linear_avx512.cpp,
// linear_dpbf16.cpp), after <immintrin.h>. Everything here is in an unnamed namespace on purpose: each
// including file compiles its own private copy with its own -m flags. An inline function or template
// with external linkage would be emitted as a weak symbol by every file that uses it, and the linker
// would keep one of them, possibly the AVX-512 one, for the AVX2 caller too (SIGILL on an AVX2-only
// CPU). With internal linkage there is nothing for the linker to merge.
//
// Ops is a struct of static functions (see linear_avx2.cpp for an example):
//   In                element type of the activations (float, or uint16_t bf16 for dpbf16)
//   Acc, Wv           the accumulator vector (16 or 8 fp32 lanes) and the loaded weight vector
//   kStep             elements of K consumed by one madd
//   zero()            an all-zero accumulator
//   load_w(w)         kStep bf16 weights from w
//   madd(acc, x, wv)  acc + x[0, kStep) * wv, lane-wise (x not aligned)
//   reduce(a0, a1)    the sum of all lanes of a0 + a1
//   in_f32(x)         one activation as fp32 (for the tail)
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace moe {
namespace {

inline float bf16_bits_to_f32(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// y[j * O] = sum_k x[j * K + k] * w[k] for the NT tokens j of one block.
template <class Ops, int NT>
void row_block(const typename Ops::In* x, int K, const uint16_t* w, float* y, int O) {
  constexpr int S = Ops::kStep;
  typename Ops::Acc a0[NT], a1[NT];
  for (int j = 0; j < NT; ++j) a0[j] = a1[j] = Ops::zero();
  int k = 0;
  for (; k + 2 * S <= K; k += 2 * S) {
    const typename Ops::Wv w0 = Ops::load_w(w + k), w1 = Ops::load_w(w + k + S);
    for (int j = 0; j < NT; ++j) {
      const typename Ops::In* xr = x + static_cast<size_t>(j) * K + k;
      a0[j] = Ops::madd(a0[j], xr, w0);
      a1[j] = Ops::madd(a1[j], xr + S, w1);
    }
  }
  for (; k + S <= K; k += S) {
    const typename Ops::Wv w0 = Ops::load_w(w + k);
    for (int j = 0; j < NT; ++j) a0[j] = Ops::madd(a0[j], x + static_cast<size_t>(j) * K + k, w0);
  }
  for (int j = 0; j < NT; ++j) {
    float s = Ops::reduce(a0[j], a1[j]);
    const typename Ops::In* xr = x + static_cast<size_t>(j) * K;
    for (int kk = k; kk < K; ++kk) s += Ops::in_f32(xr[kk]) * bf16_bits_to_f32(w[kk]);
    y[static_cast<size_t>(j) * O] = s;
  }
}

// y[t * O + o] = sum_k x[t * K + k] * W[o * K + k] for o in [o0, o1), t in [0, T).
template <class Ops>
void linear_rows_tiled(const typename Ops::In* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O) {
  for (int o = o0; o < o1; ++o) {
    const uint16_t* w = W + static_cast<size_t>(o) * K;
    int t = 0;
    for (; t + 4 <= T; t += 4) row_block<Ops, 4>(x + static_cast<size_t>(t) * K, K, w, y + static_cast<size_t>(t) * O + o, O);
    const typename Ops::In* xr = x + static_cast<size_t>(t) * K;
    float* yr = y + static_cast<size_t>(t) * O + o;
    switch (T - t) {
      case 3: row_block<Ops, 3>(xr, K, w, yr, O); break;
      case 2: row_block<Ops, 2>(xr, K, w, yr, O); break;
      case 1: row_block<Ops, 1>(xr, K, w, yr, O); break;
      default: break;
    }
  }
}

}  // namespace
}  // namespace moe
