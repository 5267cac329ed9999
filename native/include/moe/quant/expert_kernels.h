#pragma once
// CPU kernels of quantized routed experts (issue 13): the int8 / int4 counterparts of linear_rows
// and mlp_forward (moe/kernels.h). Activations stay fp32; each weight vector is dequantized in
// registers to exactly the fp32 value dequantize_row (quantize.h) gives and multiplied with fp32 FMA,
// so a quantized expert differs from its bf16 original only by its weights (and fp32 summation order).
// The point on the CPU is bandwidth: int8 reads 1/2 and int4 about 1/4 of the bf16 bytes.
// Scalar, AVX2 and AVX-512 variants are chosen at run time as the bf16 kernels are (cpu_features.h).
#include <cstdint>

#include "moe/kernels.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantize.h"
#include "moe/thread_pool.h"

namespace moe::quant {

// y[t * M.rows + o] = sum_c x[t * M.cols + c] * W[o, c] for o in [o0, o1), t in [0, T), where M =
// part_layout(L, part) and W its dequantized matrix: the same strides as moe::linear_rows (x [T, cols]
// contiguous, y [T, rows] contiguous, only columns [o0, o1) written). Single-threaded (the building
// block of expert_ffn_q_forward). Any dtype: BF16 layouts run the exact bf16 row kernels.
// isa: Scalar / Avx2 / Avx512, Auto = best_exact_isa(); Avx512Bf16 runs the Avx512 kernel (there is
// no bf16 dot product of quantized weights: activations are taken as given, in fp32). An ISA this CPU
// lacks throws moe::Error. int4 groups that are not a multiple of the SIMD chunk (32 inputs for
// AVX-512, 16 for AVX2) take the scalar kernel.
void linear_rows_q(const float* x, int T, const ExpertLayout& L, const uint8_t* blob, Part part, int o0, int o1, float* y,
                   LinearIsa isa);

// out[t] (+)= scale * down(silu(gate x[t]) * up x[t]) for the expert stored in `blob` (layout L), x
// [T, hidden] fp32, out [T, hidden]: moe::mlp_forward's contract, threading (gate and up rows of a
// block together per thread with the SiLU product, then down) and rounding. Under Avx512Bf16, as
// mlp_forward does there, x and the intermediate h are rounded to bf16 (kept as fp32 values in
// scratch.xr / scratch.h) before they are multiplied.
void expert_ffn_q_forward(const float* x, int T, const ExpertLayout& L, const uint8_t* blob, float* out, bool accumulate,
                          float scale, ThreadPool* pool, FfnScratch& scratch, LinearIsa isa = LinearIsa::Auto);

}  // namespace moe::quant
