#pragma once
// The tiling of the quantized matmul rows, written once and instantiated by each per-ISA file with its
// vector operations (linear_tiles.h's scheme). For one weight row o, tokens go in blocks of Ops::kTokens
// (then fewer for the rest); a chunk of 2 * Ops::kLanes weights is dequantized once per block into two
// fp32 vectors and FMA'd into two accumulators per token, so the decode cost is shared by the block.
// int8 factors the row scale out of the sum (one multiply per output); int4 dequantizes each weight to
// (q - zero) * scale, the exact fp32 value dequantize_row computes (q - zero is exact in fp32).
//
// Include this header ONLY from a per-ISA translation unit (qlinear_avx2.cpp, qlinear_avx512.cpp),
// after <immintrin.h>: everything here is in an unnamed namespace so that each file compiles its own
// copy with its own -m flags (linear_tiles.h explains the linker hazard otherwise).
//
// Ops is a struct of static functions:
//   V, kLanes, kTokens    fp32 vector type, its lanes, the token block (registers: 2 * kTokens accumulators)
//   zero(), set1(f), loadx(p), fmadd(a, b, c) = a * b + c, add(a, b), sub(a, b), mul(a, b)
//   reduce(a0, a1)        the sum of all lanes of a0 + a1
//   q8(p, w0, w1)         2 * kLanes int8 from p as fp32 (w0 the first kLanes)
//   q4(p, w0, w1)         kLanes bytes from p = 2 * kLanes nibbles in element order, as fp32
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace moe::quant {
namespace {

// IEEE half -> float, exact (a private copy: see above).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      mant <<= 1;
      ++e;
    } while (!(mant & 0x400u));
    bits = sign | ((112u - static_cast<uint32_t>(e)) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Small token blocks are latency bound (one FMA chain per accumulator): NT <= 2 adds a second
// accumulator pair and alternates chunks between the pairs.
template <int NT>
constexpr int kPairs = NT <= 2 ? 2 : 1;

// y[j * O] = scale * sum_k x[j * K + k] * q[k] for the NT tokens j of one block.
template <class Ops, int NT>
void q8_block(const float* x, int K, const int8_t* q, float scale, float* y, int O) {
  constexpr int L = Ops::kLanes, C = 2 * L, P = kPairs<NT>;
  typename Ops::V a[P][2][NT];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < NT; ++j) a[p][0][j] = a[p][1][j] = Ops::zero();
  auto chunk = [&](int k, typename Ops::V(&acc)[2][NT]) {
    typename Ops::V w0, w1;
    Ops::q8(q + k, w0, w1);
    for (int j = 0; j < NT; ++j) {
      const float* xr = x + static_cast<size_t>(j) * K + k;
      acc[0][j] = Ops::fmadd(Ops::loadx(xr), w0, acc[0][j]);
      acc[1][j] = Ops::fmadd(Ops::loadx(xr + L), w1, acc[1][j]);
    }
  };
  int k = 0;
  for (; k + P * C <= K; k += P * C) {
    for (int p = 0; p < P; ++p) chunk(k + p * C, a[p]);
  }
  for (; k + C <= K; k += C) chunk(k, a[0]);
  for (int j = 0; j < NT; ++j) {
    typename Ops::V v0 = a[0][0][j], v1 = a[0][1][j];
    if constexpr (P == 2) v0 = Ops::add(v0, a[1][0][j]), v1 = Ops::add(v1, a[1][1][j]);
    float s = Ops::reduce(v0, v1);
    const float* xr = x + static_cast<size_t>(j) * K;
    for (int kk = k; kk < K; ++kk) s += xr[kk] * static_cast<float>(q[kk]);
    y[static_cast<size_t>(j) * O] = scale * s;
  }
}

// The same for one int4 row: q points at the row's first byte (row starts are byte aligned: K is a
// multiple of the even group), scale / zero at the row's groups.
template <class Ops, int NT>
void q4_block(const float* x, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group, float* y, int O) {
  constexpr int L = Ops::kLanes, C = 2 * L, P = kPairs<NT>;
  typename Ops::V a[P][2][NT];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < NT; ++j) a[p][0][j] = a[p][1][j] = Ops::zero();
  const int groups = K / group;
  for (int g = 0; g < groups; ++g) {
    const typename Ops::V s = Ops::set1(half_to_float(scale[g])), z = Ops::set1(half_to_float(zero[g]));
    auto chunk = [&](int k, typename Ops::V(&acc)[2][NT]) {
      typename Ops::V w0, w1;
      Ops::q4(q + k / 2, w0, w1);
      w0 = Ops::mul(Ops::sub(w0, z), s);
      w1 = Ops::mul(Ops::sub(w1, z), s);
      for (int j = 0; j < NT; ++j) {
        const float* xr = x + static_cast<size_t>(j) * K + k;
        acc[0][j] = Ops::fmadd(Ops::loadx(xr), w0, acc[0][j]);
        acc[1][j] = Ops::fmadd(Ops::loadx(xr + L), w1, acc[1][j]);
      }
    };
    // Pairs of chunks alternate between the accumulator pairs (indices known at compile time, so the
    // accumulators stay in registers).
    const int k_end = (g + 1) * group;
    int k = g * group;
    for (; k + P * C <= k_end; k += P * C) {
      for (int p = 0; p < P; ++p) chunk(k + p * C, a[p]);
    }
    for (; k < k_end; k += C) chunk(k, a[0]);
  }
  for (int j = 0; j < NT; ++j) {
    typename Ops::V v0 = a[0][0][j], v1 = a[0][1][j];
    if constexpr (P == 2) v0 = Ops::add(v0, a[1][0][j]), v1 = Ops::add(v1, a[1][1][j]);
    y[static_cast<size_t>(j) * O] = Ops::reduce(v0, v1);
  }
}

// f(std::integral_constant<int, NT>, t) for the token blocks [t, t + NT) covering [0, T): blocks of
// Ops::kTokens, then one of the remainder.
template <int N, class F>
void remainder_block(int rem, int t, F& f) {
  if constexpr (N >= 1) {
    if (rem == N) f(std::integral_constant<int, N>{}, t);
    else remainder_block<N - 1>(rem, t, f);
  }
}

template <class Ops, class F>
void token_blocks(int T, F&& f) {
  constexpr int B = Ops::kTokens;
  int t = 0;
  for (; t + B <= T; t += B) f(std::integral_constant<int, B>{}, t);
  remainder_block<B - 1>(T - t, t, f);
}

template <class Ops>
void q8_rows(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O) {
  for (int o = o0; o < o1; ++o) {
    const int8_t* row = q + static_cast<size_t>(o) * K;
    token_blocks<Ops>(T, [&](auto nt, int t) {
      q8_block<Ops, decltype(nt)::value>(x + static_cast<size_t>(t) * K, K, row, scale[o], y + static_cast<size_t>(t) * O + o, O);
    });
  }
}

template <class Ops>
void q4_rows(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group, int o0, int o1,
             float* y, int O) {
  const int groups = K / group;
  for (int o = o0; o < o1; ++o) {
    const uint8_t* row = q + static_cast<size_t>(o) * K / 2;
    const uint16_t* s = scale + static_cast<size_t>(o) * groups;
    const uint16_t* z = zero + static_cast<size_t>(o) * groups;
    token_blocks<Ops>(T, [&](auto nt, int t) {
      q4_block<Ops, decltype(nt)::value>(x + static_cast<size_t>(t) * K, K, row, s, z, group, y + static_cast<size_t>(t) * O + o, O);
    });
  }
}

}  // namespace
}  // namespace moe::quant
