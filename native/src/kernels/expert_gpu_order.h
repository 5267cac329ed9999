#pragma once
// Internal to expert_gpu_order*.cpp: the routed-expert FFN summed in the order of the CUDA decode kernel
// (src/cuda/expert_ffn_decode.cu), in a scalar reference and an AVX-512 version that must agree bit for bit.
//
// The decode kernel gives each output row to one warp of 32 lanes. Lane l reads the row in 16-byte chunks
// (8 bf16) at chunk index l + 32c, c = 0, 1, ...; a chunk's dot product is a chain of fmaf from 0 over its 8
// elements in order; the lane adds its chunks' dot products in c order; the warp's butterfly (xor 16, 8, 4,
// 2, 1) sums the 32 lanes, and lane 0's sum is used. A bf16 product is exact in fp32, so every step is one
// IEEE rounding that both sides perform alike.
//
// Activations are handed over transposed to that lane layout: act_t[(c * 8 + j) * 32 + l] = a[8 (l + 32c) + j]
// (zero past the row's end), so that lane l's element j of chunk c is one float and a vector of 16 lanes is
// one load.
#include <cstdint>

namespace moe::detail {

struct GpuOrderDims {
  int hidden = 0;  // a multiple of 256 (the kernel's HIDDEN = 256 * NCH)
  int d_ff = 0;    // a multiple of 8
  int nch = 0;     // hidden / 256: gate/up chunk rounds per lane
  int dch = 0;     // ceil(d_ff / 256): down chunk rounds per lane (the last may cover only some lanes)
};

// Lane 0's result of the warp butterfly over the 32 lane sums.
inline float gpu_order_warp_sum(const float* v) {
  float a[16], b[8], c[4];
  for (int l = 0; l < 16; ++l) a[l] = v[l] + v[l + 16];
  for (int l = 0; l < 8; ++l) b[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; ++l) c[l] = b[l] + b[l + 4];
  const float d0 = c[0] + c[2], d1 = c[1] + c[3];
  return d0 + d1;
}

// h[t * d_ff + i] for rows i in [o0, o1) of every token: bf16(silu(gate_i . x_t) * (up_i . x_t)), as a float.
// xt: T transposed activations of nch * 256 floats each.
void gpu_order_gate_up_scalar(const float* xt, int T, const uint16_t* wg, const uint16_t* wu, const GpuOrderDims& d, int o0, int o1, float* h);
void gpu_order_gate_up_avx512(const float* xt, int T, const uint16_t* wg, const uint16_t* wu, const GpuOrderDims& d, int o0, int o1, float* h);
// y[t * hidden + r] for rows r in [o0, o1): down_r . h_t. ht: T transposed activations of dch * 256 floats each.
void gpu_order_down_scalar(const float* ht, int T, const uint16_t* wd, const GpuOrderDims& d, int o0, int o1, float* y);
void gpu_order_down_avx512(const float* ht, int T, const uint16_t* wd, const GpuOrderDims& d, int o0, int o1, float* y);

}  // namespace moe::detail
