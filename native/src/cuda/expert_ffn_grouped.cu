// Grouped routed-expert FFN: tokens grouped by expert on the device, then two grouped tensor-core
// GEMMs (bf16 operands, fp32 accumulation, WMMA 16x16x16 = mma.sync) with a 3-stage cp.async
// pipeline, then a deterministic per-token combine.
//
//   1. group_kernel (1 block): counts tokens per expert, offsets, the sorted entry list and the list
//      of (expert, 64-row tile) pairs. No host round trip: graph-capturable.
//   2. grouped_gemm<2>: h[p] = silu(x[tok(p)] Wg_e^T) * (x[tok(p)] Wu_e^T), bf16, for sorted rows p.
//   3. grouped_gemm<1>: ybuf[entry(p)] = weight(p) * (h[p] Wd_e^T), fp32.
//   4. combine_expert_outputs: y[t] (+)= sum_j ybuf[t * k + j] (fixed order j = 0..k-1: deterministic).
// Entries with a negative expert id are skipped; with a caller's expert_out the combine is the caller's.
//
// Floors (DeepSeek-V2-Lite: hidden 2048, d_ff 1408, 6 of 64 experts, one 17.3 MB expert):
// - decode, batch 1: 6 distinct experts, 104 MB of weights per layer -> ~31 us at ~3.3 TB/s (H100),
//   ~24 us at ~4.3 TB/s (H200). Batch 16: up to ~64 distinct experts (often ~40-55), <= 1.1 GB ->
//   <= 0.33 ms. Memory-bound: the kernel must keep ~30 KB of loads in flight per SM.
// - prefill 8192 tokens: 2 * 8192 * 6 * 8.65 M = 850 GFLOP per layer -> ~1.1 ms at ~800 TFLOP/s
//   (cuBLAS-class); this WMMA kernel (no wgmma/TMA) is expected at a fraction of that: the first
//   thing to replace with a wgmma or cuBLAS grouped path if prefill is too slow.
#include <mma.h>

#include <algorithm>

#include "common.cuh"
#include "cuda_check.h"
#include "expert_group.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

constexpr int BM = detail::kGroupTileRows, BN = 64, BK = 64, STAGES = 3, THREADS = 128;
constexpr int LDS = BK + 8;   // padded smem row (elements): 144 B rows spread the banks
constexpr int LDC = BN + 4;   // fp32 epilogue tile row

size_t align_up(size_t v) { return (v + 255) & ~size_t(255); }

struct Layout {
  size_t counts, offsets, pos, sorted, tile_expert, tile_m, n_tiles, h, ybuf, total;
  int max_tiles;
};

Layout layout(int rows, int k, int n_experts, int hidden, int d_ff) {
  Layout L{};
  const size_t entries = static_cast<size_t>(rows) * k;
  L.max_tiles = static_cast<int>(entries / BM) + std::min<int>(n_experts, static_cast<int>(entries)) + 1;
  size_t off = 0;
  auto take = [&](size_t bytes) { size_t at = off; off += align_up(bytes); return at; };
  L.counts = take(sizeof(int32_t) * n_experts);
  L.offsets = take(sizeof(int32_t) * (n_experts + 1));
  L.pos = take(sizeof(int32_t) * entries);
  L.sorted = take(sizeof(int32_t) * entries);
  L.tile_expert = take(sizeof(int32_t) * L.max_tiles);
  L.tile_m = take(sizeof(int32_t) * L.max_tiles);
  L.n_tiles = take(sizeof(int32_t));
  L.h = take(sizeof(bf16) * entries * d_ff);
  L.ybuf = take(sizeof(float) * entries * hidden);
  L.total = off;
  return L;
}

struct GroupArgs {
  const int32_t* expert;
  int entries, n_experts, max_tiles;
  int32_t *counts, *offsets, *pos, *sorted, *tile_expert, *tile_m, *n_tiles;
};

__global__ void __launch_bounds__(1024) group_kernel(GroupArgs a) {
  for (int e = threadIdx.x; e < a.n_experts; e += blockDim.x) a.counts[e] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < a.entries; i += blockDim.x) {
    int e = a.expert[i];
    if (e < 0) continue;  // a skipped entry (id -1): computed by another launch, or not at all
    e = e >= a.n_experts ? a.n_experts - 1 : e;  // launcher contract: ids in range
    a.pos[i] = atomicAdd(&a.counts[e], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // n_experts is small (64): a serial scan is cheaper than a parallel one
    int off = 0, tiles = 0;
    for (int e = 0; e < a.n_experts; ++e) {
      a.offsets[e] = off;
      const int c = a.counts[e];
      for (int m = 0; m < c && tiles < a.max_tiles; m += BM) {
        a.tile_expert[tiles] = e;
        a.tile_m[tiles] = m;
        ++tiles;
      }
      off += c;
    }
    a.offsets[a.n_experts] = off;
    *a.n_tiles = tiles;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < a.entries; i += blockDim.x) {
    int e = a.expert[i];
    if (e < 0) continue;
    e = e >= a.n_experts ? a.n_experts - 1 : e;
    a.sorted[a.offsets[e] + a.pos[i]] = i;
  }
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

struct GemmArgs {
  // A rows: sorted row p reads a_base + a_row(p) * a_stride, a_row = sorted[p] / k (gate/up: the
  // token) or p itself (down: the h row).
  const bf16* a_base;
  int a_stride;
  bool a_by_token;
  int k_dim;  // reduction length
  int n_dim;  // output columns
  const bf16* const* w0;  // per expert [n_dim, k_dim]
  const bf16* const* w1;  // gate/up only
  const int32_t *sorted, *offsets, *counts, *tile_expert, *tile_m, *n_tiles;
  int topk;
  const float* route_weight;  // [entries] (down only)
  bf16* h_out;                // gate/up: [entries, n_dim] in sorted order
  float* y_out;               // down: [entries, n_dim] by entry
};

template <int NB>
__global__ void __launch_bounds__(THREADS) grouped_gemm(GemmArgs g) {
  using namespace nvcuda;
  const int tile = blockIdx.x;
  if (tile >= *g.n_tiles) return;
  const int e = g.tile_expert[tile];
  const int m0 = g.tile_m[tile];
  const int count = g.counts[e];
  const int row0 = g.offsets[e] + m0;  // first sorted row of this tile
  const int valid_rows = min(BM, count - m0);
  const int n0 = blockIdx.y * BN;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* smem = reinterpret_cast<bf16*>(smem_raw);
  constexpr int kStageElems = (BM + NB * BN) * LDS;

  // Each thread copies 4 A chunks and 4 chunks per B matrix (64 rows x 8 chunks of 16 B).
  const int tid = threadIdx.x;
  const bf16* a_src[4];
  bool a_ok[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = (tid + i * THREADS) >> 3;
    a_ok[i] = r < valid_rows;
    const int p = row0 + (a_ok[i] ? r : 0);
    const int64_t ar = g.a_by_token ? g.sorted[p] / g.topk : p;
    a_src[i] = g.a_base + ar * g.a_stride + ((tid + i * THREADS) & 7) * 8;
  }
  const bf16* w[NB];
  w[0] = g.w0[e];
  if constexpr (NB == 2) w[1] = g.w1[e];

  auto load_stage = [&](int stage, int kt) {
    bf16* s = smem + stage * kStageElems;
    const int k0 = kt * BK;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int c = tid + i * THREADS, r = c >> 3, col = (c & 7) * 8;
      cp_async16(s + r * LDS + col, a_src[i] + k0, a_ok[i]);
    }
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      bf16* sb = s + (BM + b * BN) * LDS;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int c = tid + i * THREADS, r = c >> 3, col = (c & 7) * 8;
        cp_async16(sb + r * LDS + col, w[b] + static_cast<int64_t>(n0 + r) * g.k_dim + k0 + col, true);
      }
    }
  };

  const int warp = tid >> 5, wm = warp >> 1, wn = warp & 1;  // 2 x 2 warps, 32 x 32 each
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[NB][2][2];
#pragma unroll
  for (int b = 0; b < NB; ++b)
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[b][i][j], 0.f);

  const int KT = g.k_dim / BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) load_stage(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    const bf16* s = smem + (kt % STAGES) * kStageElems;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], s + (wm * 32 + i * 16) * LDS + kk, LDS);
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        const bf16* sb = s + (BM + b * BN) * LDS;
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
          wmma::load_matrix_sync(fb, sb + (wn * 32 + j * 16) * LDS + kk, LDS);
#pragma unroll
          for (int i = 0; i < 2; ++i) wmma::mma_sync(acc[b][i][j], fa[i], fb, acc[b][i][j]);
        }
      }
    }
    const int next = kt + STAGES - 1;
    if (next < KT) load_stage(next % STAGES, next);
    cp_async_commit();
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline buffers become the epilogue tile

  float* cs = reinterpret_cast<float*>(smem_raw);
#pragma unroll
  for (int b = 0; b < NB; ++b)
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
        wmma::store_matrix_sync(cs + b * BM * LDC + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, acc[b][i][j], LDC,
                                wmma::mem_row_major);
  __syncthreads();

  // 64 x 64 outputs, 8 consecutive columns per thread-iteration.
  for (int c = tid; c < BM * (BN / 8); c += THREADS) {
    const int r = c / (BN / 8), col = (c % (BN / 8)) * 8;
    if (r >= valid_rows) continue;
    const int p = row0 + r;
    float v[8];
#pragma unroll
    for (int q = 0; q < 8; ++q) v[q] = cs[r * LDC + col + q];
    if constexpr (NB == 2) {
#pragma unroll
      for (int q = 0; q < 8; ++q) v[q] = detail::silu(v[q]) * cs[BM * LDC + r * LDC + col + q];
      detail::store8(g.h_out + static_cast<int64_t>(p) * g.n_dim + n0 + col, v);
    } else {
      const int entry = g.sorted[p];
      const float rw = g.route_weight[entry];
#pragma unroll
      for (int q = 0; q < 8; ++q) v[q] *= rw;
      detail::store8(g.y_out + static_cast<int64_t>(entry) * g.n_dim + n0 + col, v);
    }
  }
}

// y[t] (+)= sum_j ybuf[t * k + j] in the fixed order j = 0..k-1 (deterministic, and the same sum whichever
// launches filled the entries); entries with a negative expert id are left out.
__global__ void combine_kernel(const float* __restrict__ ybuf, const int32_t* __restrict__ expert, int rows, int k,
                               int hidden, float* y, int y_stride, bool accumulate) {
  const int per_row = hidden / 4;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(rows) * per_row) return;
  const int64_t t = idx / per_row;
  const int c = static_cast<int>(idx % per_row) * 4;
  float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int j = 0; j < k; ++j) {
    if (expert[t * k + j] < 0) continue;
    const float4 v = *reinterpret_cast<const float4*>(ybuf + (t * k + j) * hidden + c);
    s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w;
  }
  float4* dst = reinterpret_cast<float4*>(y + t * y_stride + c);
  if (accumulate) {
    const float4 o = *dst;
    s.x += o.x; s.y += o.y; s.z += o.z; s.w += o.w;
  }
  *dst = s;
}

template <int NB>
void launch_gemm(const GemmArgs& g, int max_tiles, cudaStream_t stream) {
  const size_t pipe = static_cast<size_t>(STAGES) * (BM + NB * BN) * LDS * sizeof(bf16);
  const size_t epi = static_cast<size_t>(NB) * BM * LDC * sizeof(float);
  const size_t smem = std::max(pipe, epi);
  CUDA_CHECK(cudaFuncSetAttribute(grouped_gemm<NB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  dim3 grid(max_tiles, g.n_dim / BN);
  grouped_gemm<NB><<<grid, THREADS, smem, stream>>>(g);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void detail::launch_group_tiles(const int32_t* expert, int entries, int n_experts, int max_tiles, int32_t* counts,
                                int32_t* offsets, int32_t* pos, int32_t* sorted, int32_t* tile_expert, int32_t* tile_m,
                                int32_t* n_tiles, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(entries >= 0 && n_experts > 0 && max_tiles > 0);
  GroupArgs ga{expert, entries, n_experts, max_tiles, counts, offsets, pos, sorted, tile_expert, tile_m, n_tiles};
  group_kernel<<<1, 1024, 0, stream>>>(ga);
  CUDA_CHECK_LAUNCH();
}

void combine_expert_outputs(const float* expert_out, const int32_t* expert, int rows, int k, int hidden, float* y,
                            int y_stride, bool accumulate, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && k > 0 && hidden % 4 == 0 && y_stride >= hidden && y_stride % 4 == 0);
  if (rows == 0) return;
  const int64_t total = static_cast<int64_t>(rows) * (hidden / 4);
  combine_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(expert_out, expert, rows, k, hidden, y,
                                                                                 y_stride, accumulate);
  CUDA_CHECK_LAUNCH();
}

size_t expert_ffn_workspace_bytes(int rows, int k, int n_experts, int hidden, int d_ff) {
  return layout(rows, k, n_experts, hidden, d_ff).total;
}

void expert_ffn_grouped_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                        int n_experts, int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up,
                        const bf16* const* w_down, float* y, int y_stride, bool accumulate, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream, float* expert_out) {
  MOE_CUDA_REQUIRE(rows >= 0 && k > 0 && n_experts > 0 && k <= n_experts);
  MOE_CUDA_REQUIRE(hidden % BN == 0 && hidden % BK == 0 && d_ff % BN == 0 && d_ff % BK == 0);
  MOE_CUDA_REQUIRE(x_stride >= hidden && x_stride % 8 == 0 && y_stride >= hidden && y_stride % 4 == 0);
  if (rows == 0) return;
  const Layout L = layout(rows, k, n_experts, hidden, d_ff);
  MOE_CUDA_REQUIRE(workspace != nullptr && workspace_bytes >= L.total);
  char* ws = static_cast<char*>(workspace);
  auto i32 = [&](size_t off) { return reinterpret_cast<int32_t*>(ws + off); };

  GroupArgs ga{expert, rows * k, n_experts, L.max_tiles, i32(L.counts), i32(L.offsets), i32(L.pos),
               i32(L.sorted), i32(L.tile_expert), i32(L.tile_m), i32(L.n_tiles)};
  group_kernel<<<1, 1024, 0, stream>>>(ga);
  CUDA_CHECK_LAUNCH();

  bf16* h = reinterpret_cast<bf16*>(ws + L.h);
  float* ybuf = expert_out != nullptr ? expert_out : reinterpret_cast<float*>(ws + L.ybuf);
  GemmArgs g{};
  g.sorted = i32(L.sorted);
  g.offsets = i32(L.offsets);
  g.counts = i32(L.counts);
  g.tile_expert = i32(L.tile_expert);
  g.tile_m = i32(L.tile_m);
  g.n_tiles = i32(L.n_tiles);
  g.topk = k;

  g.a_base = x;
  g.a_stride = x_stride;
  g.a_by_token = true;
  g.k_dim = hidden;
  g.n_dim = d_ff;
  g.w0 = w_gate;
  g.w1 = w_up;
  g.h_out = h;
  launch_gemm<2>(g, L.max_tiles, stream);

  g.a_base = h;
  g.a_stride = d_ff;
  g.a_by_token = false;
  g.k_dim = d_ff;
  g.n_dim = hidden;
  g.w0 = w_down;
  g.w1 = nullptr;
  g.route_weight = weight;
  g.y_out = ybuf;
  launch_gemm<1>(g, L.max_tiles, stream);

  if (expert_out == nullptr) combine_expert_outputs(ybuf, expert, rows, k, hidden, y, y_stride, accumulate, stream);
}

void expert_ffn_grouped(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k, int n_experts,
        int hidden, int d_ff, const bf16* const* w_gate, const bf16* const* w_up, const bf16* const* w_down, float* y,
        int y_stride, bool accumulate, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  expert_ffn_grouped_entries(x, rows, x_stride, expert, weight, k, n_experts, hidden, d_ff, w_gate, w_up, w_down, y, y_stride, accumulate,
             workspace, workspace_bytes, stream, nullptr);
}

}  // namespace moe::cuda
