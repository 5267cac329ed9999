// YaRN RoPE on the rope part of each head, in place; one thread per rotary pair.
// Floor: memory-bound and tiny (read + write rows*heads*rope_dim*2 bytes: 16 heads x 64 x 2 B x 2 =
// 4 KB per token); launch-bound at decode, ~1 MB at prefill of 8192 rows (a few us).
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

__global__ void rope_kernel(bf16* x, int rows, int row_stride, int heads, int head_stride, int offset, int half,
                            const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                            float attention_factor) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t total = static_cast<int64_t>(rows) * heads * half;
  if (idx >= total) return;
  const int i = static_cast<int>(idx % half);
  const int64_t rh = idx / half;
  const int h = static_cast<int>(rh % heads);
  const int64_t r = rh / heads;
  __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(x + r * row_stride + static_cast<int64_t>(h) * head_stride +
                                                        offset + 2 * i);
  float2 v = __bfloat1622float2(*p);
  detail::rope_pair(v.x, v.y, pos[r], inv_freq[i], attention_factor);
  *p = __floats2bfloat162_rn(v.x, v.y);
}

}  // namespace

void rope_yarn_inplace(bf16* x, int rows, int row_stride, int heads, int head_stride, int offset, int rope_dim,
                       const int32_t* pos, const float* inv_freq, float attention_factor, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && heads > 0 && rope_dim > 0 && rope_dim % 2 == 0);
  MOE_CUDA_REQUIRE(offset % 2 == 0 && head_stride % 2 == 0 && row_stride % 2 == 0);
  MOE_CUDA_REQUIRE(offset + rope_dim <= head_stride || heads == 1);
  if (rows == 0) return;
  const int half = rope_dim / 2;
  const int64_t total = static_cast<int64_t>(rows) * heads * half;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((total + threads - 1) / threads);
  rope_kernel<<<blocks, threads, 0, stream>>>(x, rows, row_stride, heads, head_stride, offset, half, pos, inv_freq,
                                              attention_factor);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
