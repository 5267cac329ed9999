// One quantized expert to the bf16 expert layout (gate | up | down), for the >= 2048-row path that
// runs cuBLAS GEMMs on bf16 weights: each value is bf16(dequantize_row(...)), round to nearest even
// (the same fp32 formula as the other quantized kernels, quant_dequant.cuh). Memory-bound: reads
// the blob once, writes 2 bytes per weight (17.3 MB for DeepSeek-V2-Lite: ~5 us on an H200).
#include <algorithm>

#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_quant.h"
#include "quant_dequant.cuh"

namespace moe::cuda {
namespace {

// blockIdx.y = part (0 gate, 1 up, 2 down); a thread converts 8 consecutive weights of one row per
// step (cols % 8 == 0 and, for int4, group % 8 == 0: they share a row and a group).
template <int DT>
__global__ void __launch_bounds__(256) dequant_expert_kernel(const uint8_t* __restrict__ blob, QuantLayout L,
                                                             bf16* __restrict__ out) {
  const int part = blockIdx.y;
  const int cols = part == 2 ? L.d_ff : L.hidden;
  const size_t q_off = part == 0 ? L.gate_q : part == 1 ? L.up_q : L.down_q;
  const size_t s_off = part == 0 ? L.gate_scale : part == 1 ? L.up_scale : L.down_scale;
  const size_t z_off = part == 0 ? L.gate_zero : part == 1 ? L.up_zero : L.down_zero;
  const int64_t per_part = static_cast<int64_t>(L.d_ff) * L.hidden;  // every matrix has d_ff * hidden weights
  bf16* dst = out + part * per_part;
  const int64_t units = per_part / 8;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t idx = u * 8;
    const int row = static_cast<int>(idx / cols), col = static_cast<int>(idx % cols);
    float f[8];
    if constexpr (DT == 1) {
      const uint2 v = __ldg(reinterpret_cast<const uint2*>(blob + q_off) + u);
      qdetail::int8x4_to_f32(v.x, f);
      qdetail::int8x4_to_f32(v.y, f + 4);
      const float s = __ldg(reinterpret_cast<const float*>(blob + s_off) + row);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = qdetail::dequant_int8(f[j], s);
    } else {
      const uint32_t v = __ldg(reinterpret_cast<const uint32_t*>(blob + q_off) + u);
      qdetail::int4x8_to_f32(v, f);
      const size_t gi = static_cast<size_t>(row) * (cols / L.group) + col / L.group;
      const float s = qdetail::f16_at(blob + s_off, gi), z = qdetail::f16_at(blob + z_off, gi);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = qdetail::dequant_int4(f[j], z, s);
    }
    detail::store8(dst + idx, f);
  }
}

}  // namespace

void dequantize_expert_bf16(const uint8_t* blob, const QuantLayout& L, bf16* out, cudaStream_t stream) {
  const bool int8 = L.dtype == static_cast<int>(moe::quant::ExpertDType::INT8);
  const bool int4 = L.dtype == static_cast<int>(moe::quant::ExpertDType::INT4);
  MOE_CUDA_REQUIRE(int8 || int4);
  MOE_CUDA_REQUIRE(blob != nullptr && out != nullptr && L.hidden > 0 && L.d_ff > 0 && L.hidden % 8 == 0 && L.d_ff % 8 == 0);
  MOE_CUDA_REQUIRE(!int4 || (L.group > 0 && L.group % 8 == 0 && L.hidden % L.group == 0 && L.d_ff % L.group == 0));
  MOE_CUDA_REQUIRE(L.gate_q % 8 == 0 && L.up_q % 8 == 0 && L.down_q % 8 == 0);
  const int64_t units = static_cast<int64_t>(L.d_ff) * L.hidden / 8;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((units + 255) / 256, 1024));
  const dim3 grid(blocks, 3);
  if (int8) dequant_expert_kernel<1><<<grid, 256, 0, stream>>>(blob, L, out);
  else dequant_expert_kernel<2><<<grid, 256, 0, stream>>>(blob, L, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
