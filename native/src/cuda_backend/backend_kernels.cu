#include "backend_kernels.h"

#include "cuda_check.h"

namespace moe::cuda_backend {
namespace {

__global__ void gather_f32_rows_kernel(const float* __restrict__ x, int x_stride, const int32_t* __restrict__ idx,
                                       int rows, int n, float* __restrict__ out) {
  const int per_row = n / 4;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(rows) * per_row) return;
  const int64_t r = i / per_row;
  const int c = static_cast<int>(i % per_row) * 4;
  *reinterpret_cast<float4*>(out + r * n + c) =
      *reinterpret_cast<const float4*>(x + static_cast<int64_t>(idx[r]) * x_stride + c);
}

}  // namespace

void gather_f32_rows(const float* x, int x_stride, const int32_t* idx, int rows, int n, float* out,
                     cudaStream_t stream) {
  MOE_CUDA_REQUIRE(n % 4 == 0 && x_stride % 4 == 0 && rows >= 0);
  if (rows == 0) return;
  const int64_t total = static_cast<int64_t>(rows) * (n / 4);
  gather_f32_rows_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(x, x_stride, idx, rows, n,
                                                                                         out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda_backend
