#pragma once
// Row-block kernels of the bf16 matmul, one instruction set per source file. The SIMD files are
// compiled with their own -m flags and must not use any inline function with external linkage from a
// shared header (the linker could keep their AVX-512 copy for the whole program); the tiling they
// share, linear_tiles.h, is in an unnamed namespace so each file gets its own copy.
// All compute y[t * O + o] = sum_k x[t * K + k] * W[o * K + k] for o in [o0, o1), t in [0, T).
#include <cstdint>

namespace moe {

void linear_rows_bf16_scalar(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O);
void linear_rows_bf16_avx2(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O);
void linear_rows_bf16_avx512(const float* x, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O);
// Activations already rounded to bf16 (xb [T, K]); products summed in fp32 by _mm512_dpbf16_ps.
void linear_rows_bf16_dpbf16(const uint16_t* xb, int T, int K, const uint16_t* W, int o0, int o1, float* y, int O);

}  // namespace moe
