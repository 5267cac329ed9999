// Helpers of the prefill MoE path, where each expert's tokens go through cuBLAS as one GEMM:
// gather the routed rows into expert order, and scatter-combine the experts' outputs back per token.
// Both are memory-bound copies; the combine sums a token's k contributions in the fixed order
// j = 0..k-1, so the result does not depend on how the tokens were grouped.
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

__global__ void gather_kernel(const bf16* __restrict__ x, int x_stride, const int32_t* __restrict__ sorted, int topk,
                              int entries, int hidden, bf16* __restrict__ out) {
  const int chunks = hidden / 8;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(entries) * chunks) return;
  const int64_t p = idx / chunks;
  const int c = static_cast<int>(idx % chunks) * 8;
  const int64_t t = sorted[p] / topk;
  *reinterpret_cast<uint4*>(out + p * hidden + c) = *reinterpret_cast<const uint4*>(x + t * x_stride + c);
}

__global__ void scatter_combine_kernel(const float* __restrict__ ys, const int32_t* __restrict__ inv,
                                       const float* __restrict__ weight, int rows, int k, int hidden, float* y,
                                       int y_stride, bool accumulate) {
  const int per_row = hidden / 4;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(rows) * per_row) return;
  const int64_t t = idx / per_row;
  const int c = static_cast<int>(idx % per_row) * 4;
  float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int j = 0; j < k; ++j) {
    const float w = weight[t * k + j];
    const float4 v = *reinterpret_cast<const float4*>(ys + static_cast<int64_t>(inv[t * k + j]) * hidden + c);
    s.x += w * v.x; s.y += w * v.y; s.z += w * v.z; s.w += w * v.w;
  }
  float4* dst = reinterpret_cast<float4*>(y + t * y_stride + c);
  if (accumulate) {
    const float4 o = *dst;
    s.x += o.x; s.y += o.y; s.z += o.z; s.w += o.w;
  }
  *dst = s;
}

// dst[entry[r]] = src[r], one float4 per thread.
__global__ void scatter_entry_rows_kernel(const float* __restrict__ src, const int32_t* __restrict__ entry, int rows,
                                          int hidden, float* __restrict__ dst) {
  const int per_row = hidden / 4;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(rows) * per_row) return;
  const int64_t r = idx / per_row;
  const int c = static_cast<int>(idx % per_row) * 4;
  *reinterpret_cast<float4*>(dst + static_cast<int64_t>(entry[r]) * hidden + c) =
      *reinterpret_cast<const float4*>(src + r * hidden + c);
}

}  // namespace

void gather_routed_rows(const bf16* x, int x_stride, const int32_t* sorted, int k, int entries, int hidden, bf16* out,
                        cudaStream_t stream) {
  MOE_CUDA_REQUIRE(hidden % 8 == 0 && x_stride % 8 == 0 && k > 0 && entries >= 0);
  if (entries == 0) return;
  const int64_t total = static_cast<int64_t>(entries) * (hidden / 8);
  gather_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(x, x_stride, sorted, k, entries, hidden,
                                                                                 out);
  CUDA_CHECK_LAUNCH();
}

void scatter_combine_routed(const float* ys, const int32_t* inv, const float* weight, int rows, int k, int hidden,
                            float* y, int y_stride, bool accumulate, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(hidden % 4 == 0 && y_stride % 4 == 0 && k > 0 && rows >= 0);
  if (rows == 0) return;
  const int64_t total = static_cast<int64_t>(rows) * (hidden / 4);
  scatter_combine_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(ys, inv, weight, rows, k,
                                                                                          hidden, y, y_stride,
                                                                                          accumulate);
  CUDA_CHECK_LAUNCH();
}

void scatter_entry_rows(const float* src, const int32_t* entry, int rows, int hidden, float* dst, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(hidden % 4 == 0 && rows >= 0);
  if (rows == 0) return;
  const int64_t total = static_cast<int64_t>(rows) * (hidden / 4);
  scatter_entry_rows_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(src, entry, rows, hidden, dst);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
