// Fused MLA cache append: RMSNorm of c_kv and RoPE of k_pe straight into the compact cache.
// One block per new token. Floor: memory-bound, 2 x 1152 bytes per token (read kv_a, write cache):
// launch-bound at decode, ~19 MB at a 8192-row prefill (~6 us).
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    cache_append_kernel(const bf16* __restrict__ kv_a, int kv_a_stride, const float* __restrict__ norm, float eps,
                        int kv_lora, int rope_dim, const int32_t* __restrict__ pos,
                        const float* __restrict__ inv_freq, float attention_factor,
                        const int64_t* __restrict__ dest_row, bf16* cache) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  const bf16* src = kv_a + static_cast<int64_t>(r) * kv_a_stride;
  const int width = kv_lora + rope_dim;
  bf16* dst = cache + dest_row[r] * width;
  detail::rmsnorm_row(src, norm, eps, kv_lora, dst, scratch);
  for (int i = threadIdx.x; i < rope_dim / 2; i += blockDim.x) {
    float2 v = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(src + kv_lora)[i]);
    detail::rope_pair(v.x, v.y, pos[r], inv_freq[i], attention_factor);
    reinterpret_cast<__nv_bfloat162*>(dst + kv_lora)[i] = __floats2bfloat162_rn(v.x, v.y);
  }
}

}  // namespace

void mla_cache_append(const bf16* kv_a, int rows, int kv_a_stride, const float* kv_a_norm, float eps, int kv_lora,
                      int rope_dim, const int32_t* pos, const float* inv_freq, float attention_factor,
                      const int64_t* dest_row, bf16* cache, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && kv_lora > 0 && kv_lora % 8 == 0 && rope_dim % 8 == 0);
  MOE_CUDA_REQUIRE(kv_a_stride >= kv_lora + rope_dim && kv_a_stride % 8 == 0);
  if (rows == 0) return;
  cache_append_kernel<<<rows, kThreads, 0, stream>>>(kv_a, kv_a_stride, kv_a_norm, eps, kv_lora, rope_dim, pos,
                                                     inv_freq, attention_factor, dest_row, cache);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
