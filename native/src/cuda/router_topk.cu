// Router: softmax over the experts + greedy top-k, one warp per token.
// Floor: reads rows * n_experts * 4 bytes (256 B per token at 64 experts): launch-bound at every
// batch size we run (8192 rows is 2 MB, ~1-2 us of traffic).
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

constexpr int kMaxExperts = 256;
constexpr int kPerLane = kMaxExperts / 32;
constexpr int kWarps = 4;

__global__ void __launch_bounds__(kWarps * 32)
    router_kernel(const float* __restrict__ logits, int rows, int n_experts, int k, bool norm_topk_prob,
                  float scaling, int32_t* __restrict__ expert, float* __restrict__ weight) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (row >= rows) return;
  const float* l = logits + static_cast<int64_t>(row) * n_experts;
  // Expert e = j * 32 + lane lives in v[j] of lane `lane`.
  float v[kPerLane];
  float m = -INFINITY;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = j * 32 + lane;
    v[j] = e < n_experts ? l[e] : -INFINITY;
    m = fmaxf(m, v[j]);
  }
  m = detail::warp_max(m);
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = j * 32 + lane;
    v[j] = e < n_experts ? expf(v[j] - m) : 0.f;
    s += v[j];
  }
  s = detail::warp_sum(s);
  const float inv = 1.f / s;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) v[j] = (j * 32 + lane) < n_experts ? v[j] * inv : -1.f;  // -1: never chosen

  float chosen_sum = 0.f;
  float my_weight = 0.f;  // lane i keeps the i-th pick
  int32_t my_expert = 0;
  for (int i = 0; i < k; ++i) {
    // Arg-max with ties to the lower expert id: compare (score, -id).
    float best = -2.f;
    int best_e = 0x7fffffff;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = j * 32 + lane;
      if (v[j] > best) {  // j ascending: the first maximum within a lane has the lowest id
        best = v[j];
        best_e = e;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
      if (ob > best || (ob == best && oe < best_e)) {
        best = ob;
        best_e = oe;
      }
    }
    if (lane == i) {
      my_weight = best;
      my_expert = best_e;
    }
    chosen_sum += best;
    // Remove the pick from its owner lane.
#pragma unroll
    for (int j = 0; j < kPerLane; ++j)
      if (j * 32 + lane == best_e) v[j] = -1.f;
  }
  if (lane < k) {
    const float w = (norm_topk_prob && k > 1) ? my_weight / (chosen_sum + 1e-20f) : my_weight * scaling;
    expert[static_cast<int64_t>(row) * k + lane] = my_expert;
    weight[static_cast<int64_t>(row) * k + lane] = w;
  }
}

}  // namespace

void router_topk(const float* logits, int rows, int n_experts, int k, bool norm_topk_prob,
                 float routed_scaling_factor, int32_t* expert, float* weight, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && n_experts > 0 && n_experts <= kMaxExperts);
  MOE_CUDA_REQUIRE(k > 0 && k <= 16 && k <= n_experts);
  if (rows == 0) return;
  router_kernel<<<(rows + kWarps - 1) / kWarps, kWarps * 32, 0, stream>>>(logits, rows, n_experts, k, norm_topk_prob,
                                                                         routed_scaling_factor, expert, weight);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
