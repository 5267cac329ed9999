// Routed-expert FFN for small batches (decode): grouped GEMV. The WMMA tile kernel of
// expert_ffn_grouped.cu wastes 63 of 64 tile rows at batch 1 and keeps too few loads in flight
// (measured 84 us for 6 experts = 1.2 TB/s on an H200); here every warp streams whole weight rows
// with 16-byte loads, all issued before the first use, and reuses them for every token routed to
// that expert, so the kernel is bound by the weight bytes alone.
//
//   1. group_small_kernel (1 block): tokens per expert, the list of active experts, sorted entries.
//   2. gate_up_gemv: warp = one intermediate row i of one active expert: g = Wg[i].x, u = Wu[i].x
//      for each of the expert's tokens; h[p, i] = bf16(silu(g) * u), with the SiLU of moe/gpu_order_math.h
//      (IEEE operations only, not __expf) so that the CPU's mlp_forward_gpu_order, which sums in this
//      kernel's order, gives the same bits (a missed expert computed on the CPU changes no logit).
//   3. down_gemv: warp = two output rows of one active expert: ybuf[entry, c] = w * (Wd[c] . h[p]).
//   4. combine_expert_outputs (expert_ffn_grouped.cu, shared with the tile path): y[t] (+)= sum_j ybuf[t * k + j],
//      fixed order j = 0..k-1. With a caller's expert_out the combine is left to the caller (offloading:
//      several launches fill disjoint entries, one combine sums them in the same order as one launch would).
// Entries whose expert id is negative are skipped (not computed, their ybuf rows not written).
//
// Floor (DeepSeek-V2-Lite, batch 1): 6 experts x 17.3 MB = 104 MB per layer: ~24 us at 4.3 TB/s.
// Grids are sized by host bounds (min(rows * k, n_experts) active experts); blocks past the device's
// active count exit at once, so the launch is graph-capturable.
#include <algorithm>

#include "common.cuh"
#include "cuda_check.h"
#include "expert_group.h"
#include "moe_cuda_kernels.h"
#include "moe/gpu_order_math.h"

namespace moe::cuda {
namespace {

constexpr int WARPS = 8;
constexpr int THREADS = WARPS * 32;
constexpr int DOWN_RPW = 2;  // output rows per warp in down_gemv

size_t align_up(size_t v) { return (v + 255) & ~size_t(255); }

struct Layout {
  size_t counts, offsets, active, n_active, pos, sorted, h, ybuf, total;
};

Layout layout(int rows, int k, int n_experts, int hidden, int d_ff) {
  Layout L{};
  const size_t entries = static_cast<size_t>(rows) * k;
  size_t off = 0;
  auto take = [&](size_t bytes) { size_t at = off; off += align_up(bytes); return at; };
  L.counts = take(sizeof(int32_t) * n_experts);
  L.offsets = take(sizeof(int32_t) * (n_experts + 1));
  L.active = take(sizeof(int32_t) * n_experts);
  L.n_active = take(sizeof(int32_t));
  L.pos = take(sizeof(int32_t) * entries);
  L.sorted = take(sizeof(int32_t) * entries);
  L.h = take(sizeof(bf16) * entries * d_ff);
  L.ybuf = take(sizeof(float) * entries * hidden);
  L.total = off;
  return L;
}

__global__ void __launch_bounds__(256) group_small_kernel(const int32_t* __restrict__ expert, int entries, int n_experts,
                                                          int32_t* counts, int32_t* offsets, int32_t* active,
                                                          int32_t* n_active, int32_t* pos, int32_t* sorted,
                                                          int32_t* inv) {
  __shared__ int32_t cnt[256];
  __shared__ int32_t off[257];
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) cnt[e] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < entries; i += blockDim.x) {
    int e = expert[i];
    if (e < 0) continue;  // a skipped entry (id -1): computed by another launch, or not at all
    e = e >= n_experts ? n_experts - 1 : e;  // launcher contract: ids in range
    pos[i] = atomicAdd(&cnt[e], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // n_experts <= 256: serial scan
    int o = 0, a = 0;
    for (int e = 0; e < n_experts; ++e) {
      off[e] = o;
      offsets[e] = o;
      if (counts != nullptr) counts[e] = cnt[e];
      if (active != nullptr && cnt[e] > 0) active[a++] = e;
      o += cnt[e];
    }
    off[n_experts] = o;
    offsets[n_experts] = o;
    if (n_active != nullptr) *n_active = a;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < entries; i += blockDim.x) {
    int e = expert[i];
    if (e < 0) {
      if (inv != nullptr) inv[i] = -1;
      continue;
    }
    e = e >= n_experts ? n_experts - 1 : e;
    sorted[off[e] + pos[i]] = i;
    if (inv != nullptr) inv[i] = off[e] + pos[i];
  }
}

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  const __nv_bfloat162* a = reinterpret_cast<const __nv_bfloat162*>(&w);
  const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&x);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fa = __bfloat1622float2(a[i]);
    const float2 fb = __bfloat1622float2(b[i]);
    s = fmaf(fa.x, fb.x, s);
    s = fmaf(fa.y, fb.y, s);
  }
  return s;
}

// NCH = hidden / 256: 16-byte chunks per lane per row.
template <int NCH>
__global__ void __launch_bounds__(THREADS) gate_up_gemv(const bf16* __restrict__ x, int x_stride, int topk,
                                                        const int32_t* __restrict__ offsets,
                                                        const int32_t* __restrict__ active,
                                                        const int32_t* __restrict__ n_active,
                                                        const int32_t* __restrict__ sorted,
                                                        const bf16* const* __restrict__ wg,
                                                        const bf16* const* __restrict__ wu, int d_ff,
                                                        bf16* __restrict__ h) {
  constexpr int HIDDEN = NCH * 256;
  const int slot = blockIdx.x;
  if (slot >= *n_active) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int i = blockIdx.y * WARPS + warp;
  if (i >= d_ff) return;
  const int e = active[slot];
  const int begin = offsets[e], end = offsets[e + 1];
  const uint4* g = reinterpret_cast<const uint4*>(wg[e] + static_cast<int64_t>(i) * HIDDEN);
  const uint4* u = reinterpret_cast<const uint4*>(wu[e] + static_cast<int64_t>(i) * HIDDEN);
  uint4 rg[NCH], ru[NCH];
#pragma unroll
  for (int c = 0; c < NCH; ++c) {
    rg[c] = __ldg(g + lane + 32 * c);
    ru[c] = __ldg(u + lane + 32 * c);
  }
  for (int p = begin; p < end; ++p) {
    const int t = sorted[p] / topk;
    const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<int64_t>(t) * x_stride);
    float sg = 0.f, su = 0.f;
#pragma unroll
    for (int c = 0; c < NCH; ++c) {
      const uint4 xv = xr[lane + 32 * c];
      sg += dot8(rg[c], xv);
      su += dot8(ru[c], xv);
    }
    sg = detail::warp_sum(sg);
    su = detail::warp_sum(su);
    if (lane == 0) h[static_cast<int64_t>(p) * d_ff + i] = __float2bfloat16(gpu_order::mul(gpu_order::silu(sg), su));
  }
}

// DCH = ceil(d_ff / 256): 16-byte chunks per lane per row (the last one predicated).
template <int DCH>
__global__ void __launch_bounds__(THREADS) down_gemv(const bf16* __restrict__ h, int topk,
                                                     const int32_t* __restrict__ offsets,
                                                     const int32_t* __restrict__ active,
                                                     const int32_t* __restrict__ n_active,
                                                     const int32_t* __restrict__ sorted,
                                                     const float* __restrict__ route_weight,
                                                     const bf16* const* __restrict__ wd, int hidden, int d_ff,
                                                     float* __restrict__ ybuf) {
  const int slot = blockIdx.x;
  if (slot >= *n_active) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r0 = (blockIdx.y * WARPS + warp) * DOWN_RPW;
  if (r0 >= hidden) return;
  const int e = active[slot];
  const int begin = offsets[e], end = offsets[e + 1];
  const int chunks = d_ff / 8;
  uint4 w[DOWN_RPW][DCH];
#pragma unroll
  for (int r = 0; r < DOWN_RPW; ++r) {
    const uint4* row = reinterpret_cast<const uint4*>(wd[e] + static_cast<int64_t>(r0 + r) * d_ff);
#pragma unroll
    for (int c = 0; c < DCH; ++c) {
      const int idx = lane + 32 * c;
      w[r][c] = (idx < chunks && r0 + r < hidden) ? __ldg(row + idx) : make_uint4(0, 0, 0, 0);
    }
  }
  for (int p = begin; p < end; ++p) {
    const uint4* hr = reinterpret_cast<const uint4*>(h + static_cast<int64_t>(p) * d_ff);
    float s[DOWN_RPW] = {};
#pragma unroll
    for (int c = 0; c < DCH; ++c) {
      const int idx = lane + 32 * c;
      if (idx < chunks) {
        const uint4 hv = hr[idx];
#pragma unroll
        for (int r = 0; r < DOWN_RPW; ++r) s[r] += dot8(w[r][c], hv);
      }
    }
    const int entry = sorted[p];
    const float rw = route_weight[entry];
#pragma unroll
    for (int r = 0; r < DOWN_RPW; ++r) {
      const float v = detail::warp_sum(s[r]);
      if (lane == 0 && r0 + r < hidden) ybuf[static_cast<int64_t>(entry) * hidden + r0 + r] = v * rw;
    }
  }
}

template <int NCH>
void launch_gate_up(dim3 grid, cudaStream_t s, const bf16* x, int x_stride, int k, const int32_t* off,
                    const int32_t* act, const int32_t* na, const int32_t* sorted, const bf16* const* wg,
                    const bf16* const* wu, int d_ff, bf16* h) {
  gate_up_gemv<NCH><<<grid, THREADS, 0, s>>>(x, x_stride, k, off, act, na, sorted, wg, wu, d_ff, h);
}
template <int DCH>
void launch_down(dim3 grid, cudaStream_t s, const bf16* h, int k, const int32_t* off, const int32_t* act,
                 const int32_t* na, const int32_t* sorted, const float* w, const bf16* const* wd, int hidden, int d_ff,
                 float* ybuf) {
  down_gemv<DCH><<<grid, THREADS, 0, s>>>(h, k, off, act, na, sorted, w, wd, hidden, d_ff, ybuf);
}

}  // namespace

void detail::launch_group_small(const int32_t* expert, int entries, int n_experts, int32_t* counts, int32_t* offsets,
                                int32_t* active, int32_t* n_active, int32_t* pos, int32_t* sorted, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(entries >= 0 && n_experts > 0 && n_experts <= 256);
  group_small_kernel<<<1, 256, 0, stream>>>(expert, entries, n_experts, counts, offsets, active, n_active, pos, sorted,
                                            nullptr);
  CUDA_CHECK_LAUNCH();
}

size_t expert_group_workspace_bytes(int entries) { return align_up(sizeof(int32_t) * std::max(entries, 1)); }

void expert_group(const int32_t* expert, int entries, int n_experts, int32_t* offsets, int32_t* sorted, int32_t* inv,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(entries >= 0 && n_experts > 0 && n_experts <= 256);
  MOE_CUDA_REQUIRE(workspace != nullptr && workspace_bytes >= expert_group_workspace_bytes(entries));
  int32_t* pos = static_cast<int32_t*>(workspace);
  group_small_kernel<<<1, 256, 0, stream>>>(expert, entries, n_experts, nullptr, offsets, nullptr, nullptr, pos, sorted,
                                            inv);
  CUDA_CHECK_LAUNCH();
}

bool expert_ffn_decode_supported(int hidden, int d_ff, int n_experts) {
  const bool hidden_ok = hidden == 256 || hidden == 512 || hidden == 1024 || hidden == 2048;
  return hidden_ok && d_ff % 8 == 0 && d_ff > 0 && d_ff <= 2048 && n_experts > 0 && n_experts <= 256;
}

size_t expert_ffn_decode_workspace_bytes(int rows, int k, int n_experts, int hidden, int d_ff) {
  return layout(rows, k, n_experts, hidden, d_ff).total;
}

void expert_ffn_decode_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                       int n_experts, int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up,
                       const bf16* const* w_down, float* y, int y_stride, bool accumulate, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, float* expert_out) {
  MOE_CUDA_REQUIRE(rows >= 0 && k > 0 && k <= n_experts);
  MOE_CUDA_REQUIRE(expert_ffn_decode_supported(hidden, d_ff, n_experts));
  MOE_CUDA_REQUIRE(x_stride >= hidden && x_stride % 8 == 0 && y_stride >= hidden && y_stride % 4 == 0);
  if (rows == 0) return;
  const Layout L = layout(rows, k, n_experts, hidden, d_ff);
  MOE_CUDA_REQUIRE(workspace != nullptr && workspace_bytes >= L.total);
  char* ws = static_cast<char*>(workspace);
  auto i32 = [&](size_t off) { return reinterpret_cast<int32_t*>(ws + off); };
  const int entries = rows * k;
  group_small_kernel<<<1, 256, 0, stream>>>(expert, entries, n_experts, i32(L.counts), i32(L.offsets), i32(L.active),
                                            i32(L.n_active), i32(L.pos), i32(L.sorted), nullptr);
  CUDA_CHECK_LAUNCH();

  const int max_active = std::min(n_experts, entries);
  bf16* h = reinterpret_cast<bf16*>(ws + L.h);
  float* ybuf = expert_out != nullptr ? expert_out : reinterpret_cast<float*>(ws + L.ybuf);
  const dim3 g1(max_active, (d_ff + WARPS - 1) / WARPS);
  switch (hidden / 256) {
    case 1: launch_gate_up<1>(g1, stream, x, x_stride, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), w_gate, w_up, d_ff, h); break;
    case 2: launch_gate_up<2>(g1, stream, x, x_stride, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), w_gate, w_up, d_ff, h); break;
    case 4: launch_gate_up<4>(g1, stream, x, x_stride, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), w_gate, w_up, d_ff, h); break;
    default: launch_gate_up<8>(g1, stream, x, x_stride, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), w_gate, w_up, d_ff, h); break;
  }
  CUDA_CHECK_LAUNCH();

  const int rows_per_block = WARPS * DOWN_RPW;
  const dim3 g2(max_active, (hidden + rows_per_block - 1) / rows_per_block);
  const int dch = (d_ff / 8 + 31) / 32;
  switch (dch) {
    case 1: launch_down<1>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
    case 2: launch_down<2>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
    case 3: launch_down<3>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
    case 4: launch_down<4>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
    case 5: launch_down<5>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
    case 6: launch_down<6>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
    case 7: launch_down<7>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
    default: launch_down<8>(g2, stream, h, k, i32(L.offsets), i32(L.active), i32(L.n_active), i32(L.sorted), weight, w_down, hidden, d_ff, ybuf); break;
  }
  CUDA_CHECK_LAUNCH();

  if (expert_out == nullptr) combine_expert_outputs(ybuf, expert, rows, k, hidden, y, y_stride, accumulate, stream);
}

void expert_ffn_decode(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k, int n_experts,
        int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up, const bf16* const* w_down, float* y,
        int y_stride, bool accumulate, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  expert_ffn_decode_entries(x, rows, x_stride, expert, weight, k, n_experts, hidden, d_ff, w_gate, w_up, w_down, y, y_stride, accumulate,
             workspace, workspace_bytes, stream, nullptr);
}

}  // namespace moe::cuda
