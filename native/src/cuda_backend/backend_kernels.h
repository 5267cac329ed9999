#pragma once
// Small kernels private to the CUDA backend (backend_kernels.cu).
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda_backend {

// out[r, :n] = x[idx[r], :n] (fp32 rows, x row stride x_stride, out contiguous). n % 4 == 0.
void gather_f32_rows(const float* x, int x_stride, const int32_t* idx, int rows, int n, float* out,
                     cudaStream_t stream);

}  // namespace moe::cuda_backend
