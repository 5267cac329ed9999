// SiLU-mul of a fused [gate | up] GEMM output; 8 elements per thread (16-byte accesses).
// Floor: memory-bound, rows * d_ff * 6 bytes (read gate + up, write h): the layer-0 MLP at a
// 8192-row prefill is 8192 x 10944 x 6 = 538 MB (~170 us); decode is launch-bound.
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

__global__ void silu_mul_kernel(const bf16* __restrict__ gu, int rows, int d_ff, int gu_stride, bf16* __restrict__ out,
                                int out_stride) {
  const int per_row = d_ff / 8;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(rows) * per_row) return;
  const int64_t r = idx / per_row;
  const int c = static_cast<int>(idx % per_row) * 8;
  float g[8], u[8];
  detail::load8(gu + r * gu_stride + c, g);
  detail::load8(gu + r * gu_stride + d_ff + c, u);
#pragma unroll
  for (int j = 0; j < 8; ++j) g[j] = detail::silu(g[j]) * u[j];
  detail::store8(out + r * out_stride + c, g);
}

}  // namespace

void silu_mul(const bf16* gu, int rows, int d_ff, int gu_stride, bf16* out, int out_stride, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && d_ff > 0 && d_ff % 8 == 0);
  MOE_CUDA_REQUIRE(gu_stride >= 2 * d_ff && gu_stride % 8 == 0 && out_stride >= d_ff && out_stride % 8 == 0);
  if (rows == 0) return;
  const int64_t total = static_cast<int64_t>(rows) * (d_ff / 8);
  const int threads = 256;
  silu_mul_kernel<<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, stream>>>(
      gu, rows, d_ff, gu_stride, out, out_stride);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
