// RMSNorm, one block per row.
// Floor: memory-bound. Per row n*(in bytes + out bytes); e.g. 8192 x 2048 fp32 -> bf16 is 100 MB,
// ~30 us at ~3.3 TB/s. At decode (1-16 rows) it is launch-bound (~2-3 us).
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;

template <typename Tin, typename Tout>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(const Tin* __restrict__ x, int x_stride,
                                                          const float* __restrict__ w, float eps, int n,
                                                          Tout* out, int out_stride) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  detail::rmsnorm_row(x + row * x_stride, w, eps, n, out + row * out_stride, scratch);
}

template <typename Tin, typename Tout>
void launch(const Tin* x, int x_stride, const float* w, float eps, int rows, int n, Tout* out, int out_stride,
            cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && n > 0 && n % 8 == 0);
  MOE_CUDA_REQUIRE(x_stride >= n && out_stride >= n && x_stride % 8 == 0 && out_stride % 8 == 0);
  if (rows == 0) return;
  rmsnorm_kernel<Tin, Tout><<<rows, kThreads, 0, stream>>>(x, x_stride, w, eps, n, out, out_stride);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rmsnorm_f32_to_bf16(const float* x, int x_stride, const float* w, float eps, int rows, int n, bf16* out,
                         int out_stride, cudaStream_t stream) {
  launch(x, x_stride, w, eps, rows, n, out, out_stride, stream);
}

void rmsnorm_bf16_to_bf16(const bf16* x, int x_stride, const float* w, float eps, int rows, int n, bf16* out,
                          int out_stride, cudaStream_t stream) {
  launch(x, x_stride, w, eps, rows, n, out, out_stride, stream);
}

}  // namespace moe::cuda
