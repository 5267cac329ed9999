#pragma once
// Row-block kernels of the quantized matmul (expert_kernels.h), one instruction set per source file,
// compiled with its own -m flags (CMakeLists.txt). The same rule as linear_simd.h: the SIMD files use
// no inline function with external linkage from a shared header; what they share, qlinear_tiles.h,
// is in an unnamed namespace.
// All compute y[t * O + o] = sum_k x[t * K + k] * W[o, k] for o in [o0, o1), t in [0, T), where W is
//   int8: W[o, k] = q[o * K + k] * scale[o]                                  (expert_format.h)
//   int4: W[o, k] = (nibble(o * K + k) - zero[o, g]) * scale[o, g], g = k / group, scale / zero fp16
//         [O, K / group]; nibble i is the low half of byte i / 2 for even i, the high half for odd i.
// The int4 SIMD kernels need group % 32 == 0 (AVX-512) / group % 16 == 0 (AVX2); the caller checks.
#include <cstdint>

namespace moe::quant {

void linear_rows_q8_scalar(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O);
void linear_rows_q8_avx2(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O);
void linear_rows_q8_avx512(const float* x, int T, int K, const int8_t* q, const float* scale, int o0, int o1, float* y, int O);

void linear_rows_q4_scalar(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group,
                           int o0, int o1, float* y, int O);
void linear_rows_q4_avx2(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group,
                         int o0, int o1, float* y, int O);
void linear_rows_q4_avx512(const float* x, int T, int K, const uint8_t* q, const uint16_t* scale, const uint16_t* zero, int group,
                           int o0, int o1, float* y, int O);

// Inputs per SIMD chunk of the int4 kernels: a group must be a multiple of it.
constexpr int kQ4ChunkAvx2 = 16, kQ4ChunkAvx512 = 32;

}  // namespace moe::quant
