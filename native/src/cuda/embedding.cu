// Embedding gather: bf16 table rows to the fp32 residual stream; one block per token.
// Floor: memory-bound, rows * hidden * (2 + 4) bytes (12 KB per token): launch-bound at decode.
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

__global__ void embedding_kernel(const bf16* __restrict__ table, int vocab, int hidden, const int32_t* __restrict__ ids,
                                 float* __restrict__ out, int out_stride, int32_t* bad_id_flag) {
  const int r = blockIdx.x;
  const int32_t id = ids[r];
  float* dst = out + static_cast<int64_t>(r) * out_stride;
  const bool ok = id >= 0 && id < vocab;
  if (!ok && threadIdx.x == 0 && bad_id_flag != nullptr) *bad_id_flag = 1;
  const bf16* src = table + static_cast<int64_t>(ok ? id : 0) * hidden;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
    float f[8];
    if (ok) {
      detail::load8(src + i, f);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = 0.f;
    }
    detail::store8(dst + i, f);
  }
}

}  // namespace

void embedding(const bf16* table, int vocab, int hidden, const int32_t* ids, int rows, float* out, int out_stride,
               int32_t* bad_id_flag, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && vocab > 0 && hidden > 0 && hidden % 8 == 0);
  MOE_CUDA_REQUIRE(out_stride >= hidden && out_stride % 4 == 0);
  if (rows == 0) return;
  embedding_kernel<<<rows, 256, 0, stream>>>(table, vocab, hidden, ids, out, out_stride, bad_id_flag);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
