// Grouped routed-expert FFN on quantized experts (33..2047 rows): the WMMA tile kernel of
// expert_ffn_grouped.cu with the weight tiles read as int8 / int4 and dequantized to bf16 on their
// way into shared memory; the activations (x, h) still come in by cp.async, three stages deep.
//
// Per k-step each thread issues its 16-byte weight loads (int8: 2 per matrix, int4: 1) into
// registers before the tensor-core work of the current stage, then dequantizes them
// (bf16((q - z) * s) / bf16(q * s): the value dequantize_expert_bf16 produces) into the stage two
// ahead, so the load latency hides behind one stage of MMAs. Semantics: exactly the bf16 tile
// kernel run on dequantize_expert_bf16's weights (same grouping, fp32 accumulation, h rounded to
// bf16, per-entry output in sorted-then-entry order).
//
// Expected: at 33..~512 rows (decode batches, short prefill chunks) the kernel is weight-bound like
// the bf16 one and reads 1/2 (int8) or ~0.28 (int4 + scales) of its bytes; above that it is
// MMA/issue-bound and the dequantization (~2 ALU ops per weight per m-tile) makes it somewhat
// slower than the bf16 tile kernel per FLOP.
#include <mma.h>

#include <algorithm>

#include "common.cuh"
#include "cuda_check.h"
#include "expert_group.h"
#include "moe_cuda_quant.h"
#include "quant_dequant.cuh"

namespace moe::cuda {
namespace {

constexpr int BM = detail::kGroupTileRows, BN = 64, BK = 64, STAGES = 3, THREADS = 128;
constexpr int LDS = BK + 8;  // padded smem row (elements), as the bf16 kernel
constexpr int LDC = BN + 4;

size_t align_up(size_t v) { return (v + 255) & ~size_t(255); }

struct WsLayout {
  size_t counts, offsets, pos, sorted, tile_expert, tile_m, n_tiles, h, total;
  int max_tiles;
};

WsLayout ws_layout(int rows, int k, int n_experts, int d_ff) {
  WsLayout W{};
  const size_t entries = static_cast<size_t>(rows) * k;
  W.max_tiles = static_cast<int>(entries / BM) + std::min<int>(n_experts, static_cast<int>(entries)) + 1;
  size_t off = 0;
  auto take = [&](size_t bytes) { size_t at = off; off += align_up(bytes); return at; };
  W.counts = take(sizeof(int32_t) * n_experts);
  W.offsets = take(sizeof(int32_t) * (n_experts + 1));
  W.pos = take(sizeof(int32_t) * entries);
  W.sorted = take(sizeof(int32_t) * entries);
  W.tile_expert = take(sizeof(int32_t) * W.max_tiles);
  W.tile_m = take(sizeof(int32_t) * W.max_tiles);
  W.n_tiles = take(sizeof(int32_t));
  W.h = take(sizeof(bf16) * entries * d_ff);
  W.total = off;
  return W;
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

struct QGemmArgs {
  const bf16* a_base;  // sorted row p reads a_base + a_row(p) * a_stride (a_row: token or p)
  int a_stride;
  bool a_by_token;
  int k_dim, n_dim;  // reduction length (weight row length), output columns (weight rows)
  const uint8_t* const* blobs;
  int group;                          // int4 only
  size_t q_off[2], s_off[2], z_off[2];  // matrix 0 (gate / down), matrix 1 (up)
  const int32_t *sorted, *offsets, *counts, *tile_expert, *tile_m, *n_tiles;
  int topk;
  const float* route_weight;
  bf16* h_out;
  float* y_out;
};

// 16-byte chunk of EPC weights -> EPC bf16 in shared memory (EPC / 8 16-byte stores).
template <int DT>
__device__ __forceinline__ void dequant_store(const uint4& w, float s, float z, bf16* dst) {
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
  if constexpr (DT == 1) {
    float f[16];
#pragma unroll
    for (int k = 0; k < 4; ++k) qdetail::int8x4_to_f32(words[k], f + 4 * k);
#pragma unroll
    for (int j = 0; j < 16; ++j) f[j] = qdetail::dequant_int8(f[j], s);
    detail::store8(dst, f);
    detail::store8(dst + 8, f + 8);
  } else {
    float f[32];
#pragma unroll
    for (int k = 0; k < 4; ++k) qdetail::int4x8_to_f32(words[k], f + 8 * k);
#pragma unroll
    for (int j = 0; j < 32; ++j) f[j] = qdetail::dequant_int4(f[j], z, s);
#pragma unroll
    for (int q = 0; q < 4; ++q) detail::store8(dst + 8 * q, f + 8 * q);
  }
}

template <int DT, int NB>
__global__ void __launch_bounds__(THREADS) q_grouped_gemm(QGemmArgs g) {
  using namespace nvcuda;
  constexpr int EPC = DT == 1 ? 16 : 32;  // weights per 16-byte chunk
  constexpr int CPR = BK / EPC;            // chunks per tile row and k-step: 4 / 2
  constexpr int BCH = BN * CPR / THREADS;  // chunks per thread per matrix: 2 / 1
  const int tile = blockIdx.x;
  if (tile >= *g.n_tiles) return;
  const int e = g.tile_expert[tile];
  const int m0 = g.tile_m[tile];
  const int count = g.counts[e];
  const int row0 = g.offsets[e] + m0;
  const int valid_rows = min(BM, count - m0);
  const int n0 = blockIdx.y * BN;
  const uint8_t* blob = g.blobs[e];

  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* smem = reinterpret_cast<bf16*>(smem_raw);
  constexpr int kStageElems = (BM + NB * BN) * LDS;

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

  // This thread's weight chunks: tile row b_row (weight row n0 + b_row), k offset b_col in the step.
  int b_row[BCH], b_col[BCH];
#pragma unroll
  for (int i = 0; i < BCH; ++i) {
    const int c = tid + i * THREADS;
    b_row[i] = c / CPR;
    b_col[i] = (c % CPR) * EPC;
  }
  const size_t row_chunks = static_cast<size_t>(g.k_dim / EPC);
  const uint4* bq[NB];
  float row_scale[NB][BCH];  // int8: per weight row, fixed for the whole k loop
#pragma unroll
  for (int b = 0; b < NB; ++b) {
    bq[b] = reinterpret_cast<const uint4*>(blob + g.q_off[b]);
#pragma unroll
    for (int i = 0; i < BCH; ++i)
      row_scale[b][i] = DT == 1 ? __ldg(reinterpret_cast<const float*>(blob + g.s_off[b]) + n0 + b_row[i]) : 0.f;
  }
  uint4 pw[NB][BCH];
  float ps[NB][BCH], pz[NB][BCH];
  auto fetch_b = [&](int kt) {
    const int k0 = kt * BK;
#pragma unroll
    for (int b = 0; b < NB; ++b)
#pragma unroll
      for (int i = 0; i < BCH; ++i) {
        const int row = n0 + b_row[i];
        pw[b][i] = __ldg(bq[b] + static_cast<size_t>(row) * row_chunks + (k0 + b_col[i]) / EPC);
        if constexpr (DT == 2) {
          const size_t gi = static_cast<size_t>(row) * (g.k_dim / g.group) + (k0 + b_col[i]) / g.group;
          ps[b][i] = qdetail::f16_at(blob + g.s_off[b], gi);
          pz[b][i] = qdetail::f16_at(blob + g.z_off[b], gi);
        } else {
          ps[b][i] = row_scale[b][i];
          pz[b][i] = 0.f;
        }
      }
  };
  auto store_b = [&](int stage) {
    bf16* s = smem + stage * kStageElems;
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      bf16* sb = s + (BM + b * BN) * LDS;
#pragma unroll
      for (int i = 0; i < BCH; ++i) dequant_store<DT>(pw[b][i], ps[b][i], pz[b][i], sb + b_row[i] * LDS + b_col[i]);
    }
  };
  auto load_a = [&](int stage, int kt) {
    bf16* s = smem + stage * kStageElems;
    const int k0 = kt * BK;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int c = tid + i * THREADS, r = c >> 3, col = (c & 7) * 8;
      cp_async16(s + r * LDS + col, a_src[i] + k0, a_ok[i]);
    }
  };

  const int warp = tid >> 5, wm = warp >> 1, wn = warp & 1;
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
    if (s < KT) {
      load_a(s, s);
      fetch_b(s);
      store_b(s);
    }
    cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    const int next = kt + STAGES - 1;
    if (next < KT) fetch_b(next);  // in flight during this stage's MMAs
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
    // Stage next % STAGES was last read in iteration kt - 1; every thread has passed this
    // iteration's barrier, so it can be refilled (A by cp.async, B from the prefetched registers).
    if (next < KT) {
      load_a(next % STAGES, next);
      store_b(next % STAGES);
    }
    cp_async_commit();
  }
  cp_async_wait<0>();
  __syncthreads();

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

template <int DT, int NB>
void launch_gemm(const QGemmArgs& g, int max_tiles, cudaStream_t stream) {
  const size_t pipe = static_cast<size_t>(STAGES) * (BM + NB * BN) * LDS * sizeof(bf16);
  const size_t epi = static_cast<size_t>(NB) * BM * LDC * sizeof(float);
  const size_t smem = std::max(pipe, epi);
  CUDA_CHECK(cudaFuncSetAttribute(q_grouped_gemm<DT, NB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  dim3 grid(max_tiles, g.n_dim / BN);
  q_grouped_gemm<DT, NB><<<grid, THREADS, smem, stream>>>(g);
  CUDA_CHECK_LAUNCH();
}

template <int DT>
void run_gemms(QGemmArgs g, const QuantLayout& L, const bf16* x, int x_stride, bf16* h, const float* weight,
               float* expert_out, int max_tiles, cudaStream_t stream) {
  g.a_base = x;
  g.a_stride = x_stride;
  g.a_by_token = true;
  g.k_dim = L.hidden;
  g.n_dim = L.d_ff;
  g.q_off[0] = L.gate_q, g.q_off[1] = L.up_q;
  g.s_off[0] = L.gate_scale, g.s_off[1] = L.up_scale;
  g.z_off[0] = L.gate_zero, g.z_off[1] = L.up_zero;
  g.h_out = h;
  launch_gemm<DT, 2>(g, max_tiles, stream);

  g.a_base = h;
  g.a_stride = L.d_ff;
  g.a_by_token = false;
  g.k_dim = L.d_ff;
  g.n_dim = L.hidden;
  g.q_off[0] = L.down_q, g.q_off[1] = 0;
  g.s_off[0] = L.down_scale, g.s_off[1] = 0;
  g.z_off[0] = L.down_zero, g.z_off[1] = 0;
  g.route_weight = weight;
  g.y_out = expert_out;
  launch_gemm<DT, 1>(g, max_tiles, stream);
}

}  // namespace

size_t expert_ffn_grouped_q_workspace_bytes(int rows, int k, int n_experts, const QuantLayout& L) {
  return ws_layout(rows, k, n_experts, L.d_ff).total;
}

void expert_ffn_grouped_q_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                                  int n_experts, const uint8_t* const* blobs, const QuantLayout& L, void* workspace,
                                  size_t workspace_bytes, cudaStream_t stream, float* expert_out) {
  MOE_CUDA_REQUIRE(rows >= 0 && k > 0 && k <= n_experts);
  MOE_CUDA_REQUIRE(expert_ffn_q_supported(L, n_experts));
  MOE_CUDA_REQUIRE(x_stride >= L.hidden && x_stride % 8 == 0);
  MOE_CUDA_REQUIRE(expert_out != nullptr && blobs != nullptr);
  if (rows == 0) return;
  const WsLayout W = ws_layout(rows, k, n_experts, L.d_ff);
  MOE_CUDA_REQUIRE(workspace != nullptr && workspace_bytes >= W.total);
  char* ws = static_cast<char*>(workspace);
  auto i32 = [&](size_t off) { return reinterpret_cast<int32_t*>(ws + off); };
  detail::launch_group_tiles(expert, rows * k, n_experts, W.max_tiles, i32(W.counts), i32(W.offsets), i32(W.pos),
                             i32(W.sorted), i32(W.tile_expert), i32(W.tile_m), i32(W.n_tiles), stream);
  QGemmArgs g{};
  g.blobs = blobs;
  g.group = L.group;
  g.sorted = i32(W.sorted);
  g.offsets = i32(W.offsets);
  g.counts = i32(W.counts);
  g.tile_expert = i32(W.tile_expert);
  g.tile_m = i32(W.tile_m);
  g.n_tiles = i32(W.n_tiles);
  g.topk = k;
  bf16* h = reinterpret_cast<bf16*>(ws + W.h);
  if (L.dtype == static_cast<int>(moe::quant::ExpertDType::INT8)) {
    run_gemms<1>(g, L, x, x_stride, h, weight, expert_out, W.max_tiles, stream);
  } else {
    run_gemms<2>(g, L, x, x_stride, h, weight, expert_out, W.max_tiles, stream);
  }
}

}  // namespace moe::cuda
