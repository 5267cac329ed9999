// Dense linear layers through cuBLAS: bf16 A and B, fp32 accumulation (CUBLAS_COMPUTE_32F).
// Floor: max(weights bytes / bandwidth, 2 * rows * in * out / bf16 tensor rate). Decode (1-16 rows)
// is weight-bound: e.g. q_proj 3072 x 2048 bf16 = 12.6 MB, ~4 us at ~3.3 TB/s.
//
// Row-major y[rows, out] = x[rows, in] * W[out, in]^T is, in cuBLAS's column-major terms,
// y^T[out, rows] = W^T... i.e. C(out x rows) = op(A)=W (stored [out, in] row-major = column-major
// in x out, so transpose) times B = x^T (column-major in x rows, ld x_stride).
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {

// cublasSetStream() also resets a user-set workspace to cuBLAS's default pool (cuBLAS docs), which a
// CUDA graph capture must not allocate from: switch streams only when the stream really changes, and
// set the workspace after the stream (the CUDA backend does).
void bind_stream(cublasHandle_t handle, cudaStream_t stream) {
  cudaStream_t current = nullptr;
  CUBLAS_CHECK(cublasGetStream(handle, &current));
  if (current != stream) CUBLAS_CHECK(cublasSetStream(handle, stream));
}

namespace {

void gemm(cublasHandle_t handle, const bf16* x, int rows, int in, int x_stride, const bf16* W, int out, void* y,
          cudaDataType_t y_type, int y_stride, float beta, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(handle != nullptr && rows >= 0 && in > 0 && out > 0);
  MOE_CUDA_REQUIRE(x_stride >= in && y_stride >= out);
  if (rows == 0) return;
  bind_stream(handle, stream);
  const float alpha = 1.f;
  CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &alpha, W, CUDA_R_16BF, in, x,
                            CUDA_R_16BF, x_stride, &beta, y, y_type, y_stride, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void linear_bf16_out_bf16(cublasHandle_t handle, const bf16* x, int rows, int in, int x_stride, const bf16* W,
                          int out, bf16* y, int y_stride, cudaStream_t stream) {
  gemm(handle, x, rows, in, x_stride, W, out, y, CUDA_R_16BF, y_stride, 0.f, stream);
}

void linear_bf16_out_f32(cublasHandle_t handle, const bf16* x, int rows, int in, int x_stride, const bf16* W,
                         int out, float* y, int y_stride, bool accumulate, cudaStream_t stream) {
  gemm(handle, x, rows, in, x_stride, W, out, y, CUDA_R_32F, y_stride, accumulate ? 1.f : 0.f, stream);
}

}  // namespace moe::cuda
