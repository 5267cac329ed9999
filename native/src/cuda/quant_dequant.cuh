#pragma once
// Device helpers of the quantized expert kernels (included by their .cu files only): exact
// conversion of packed int8 / int4 weights to fp32 without the slow I2F pipe, bf16 pairs to fp32,
// and the one dequantization formula every quantized kernel shares (so the tile path, the GEMV path
// and dequantize_expert_bf16 agree with moe::quant::dequantize_row bit for bit before rounding).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace moe::cuda::qdetail {

// 2^23 + b as an fp32 bit pattern for one byte b of `w` (byte j), by a single PRMT: the byte goes to
// the low mantissa byte, 0x4B00_00 above it. Subtracting 2^23 (+ offset) is then an exact FADD.
template <int J>
__device__ __forceinline__ float byte_as_float_2p23(uint32_t w) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540u | J));
}

// Four signed int8 (byte j = element j) to fp32, exactly.
__device__ __forceinline__ void int8x4_to_f32(uint32_t w, float* f) {
  const uint32_t u = w ^ 0x80808080u;  // b + 128 as an unsigned byte
  f[0] = byte_as_float_2p23<0>(u) - 8388736.f;  // 2^23 + 128
  f[1] = byte_as_float_2p23<1>(u) - 8388736.f;
  f[2] = byte_as_float_2p23<2>(u) - 8388736.f;
  f[3] = byte_as_float_2p23<3>(u) - 8388736.f;
}

// Eight int4 of one word (element 2i = low nibble of byte i, 2i + 1 = its high nibble) to fp32.
__device__ __forceinline__ void int4x8_to_f32(uint32_t w, float* f) {
  const uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
  f[0] = byte_as_float_2p23<0>(lo) - 8388608.f;
  f[1] = byte_as_float_2p23<0>(hi) - 8388608.f;
  f[2] = byte_as_float_2p23<1>(lo) - 8388608.f;
  f[3] = byte_as_float_2p23<1>(hi) - 8388608.f;
  f[4] = byte_as_float_2p23<2>(lo) - 8388608.f;
  f[5] = byte_as_float_2p23<2>(hi) - 8388608.f;
  f[6] = byte_as_float_2p23<3>(lo) - 8388608.f;
  f[7] = byte_as_float_2p23<3>(hi) - 8388608.f;
}

// The weight registers of a GEMV are loop-invariant over the tokens; without this the compiler
// hoists their conversion to fp32 out of the token loop (8x the registers for int4: spills).
// An empty volatile asm per use keeps the packed form live and converts it where it is used.
__device__ __forceinline__ uint4 opaque(uint4 v) {
  asm volatile("" : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w));
  return v;
}

// One word of two bf16 (element 0 low half) to fp32 (a shift / a mask: exact).
__device__ __forceinline__ void bf16x2_to_f32(uint32_t v, float& a, float& b) {
  a = __uint_as_float(v << 16);
  b = __uint_as_float(v & 0xFFFF0000u);
}

// 8 * N consecutive bf16 from 16-byte aligned global memory to fp32.
template <int N>
__device__ __forceinline__ void load_bf16_f32(const __nv_bfloat16* p, float* f) {
  const uint4* q = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const uint4 v = q[i];
    bf16x2_to_f32(v.x, f[8 * i + 0], f[8 * i + 1]);
    bf16x2_to_f32(v.y, f[8 * i + 2], f[8 * i + 3]);
    bf16x2_to_f32(v.z, f[8 * i + 4], f[8 * i + 5]);
    bf16x2_to_f32(v.w, f[8 * i + 6], f[8 * i + 7]);
  }
}

__device__ __forceinline__ float f16_at(const uint8_t* base, size_t index) {
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(base) + index)));
}

// The reference formula of dequantize_row: int8 q * s; int4 (q - z) * s, in fp32, no contraction.
__device__ __forceinline__ float dequant_int8(float q, float s) { return __fmul_rn(q, s); }
__device__ __forceinline__ float dequant_int4(float q, float z, float s) { return __fmul_rn(__fsub_rn(q, z), s); }

}  // namespace moe::cuda::qdetail
