// Routed-expert FFN on quantized experts for small batches (decode): the grouped GEMV of
// expert_ffn_decode.cu with int8 / int4 weights read as stored and dequantized in registers.
//
//   1. launch_group_small (the bf16 path's kernel): tokens per expert, active experts, sorted entries.
//   2. q_gate_up_gemv: warp = GU_RPW intermediate rows i of one active expert; every lane holds its
//      16-byte chunks of gate row i and up row i (all loads issued before the first use), then for
//      each of the expert's tokens g = Wg[i].x, u = Wu[i].x and h[p, i] = bf16(silu(g) * u).
//   3. q_down_gemv: warp = DOWN_RPW output rows: expert_out[entry, c] = w * (Wd[c] . h[p]).
// Each weight row is read once per launch and reused for all of the expert's tokens.
//
// Exact dequantization (no rounding of the weights): int8 (q * s): the dot sums q * x in fp32 and
// multiplies by the row's scale once; int4 ((q - z) * s per group): a 16-byte chunk is 32 weights of
// one group (group % 32 == 0), so its contribution is s * (sum q x - z * sum x), sum x shared by
// every row of the warp. q -> fp32 is one PRMT + one FADD (quant_dequant.cuh), not I2F.
//
// Expected throughput (H200, DeepSeek-V2-Lite: hidden 2048, d_ff 1408; bf16 GEMV ~84 -> ~30 us for
// 6 experts at batch 1 once memory-bound): the weight bytes per expert drop from 17.3 MB to 8.7 MB
// (int8, + 14 KB scales) and 4.3 MB + 0.54 MB scales/zeros (int4, group 64), so a bandwidth-bound
// kernel runs ~2x (int8) and ~3.2x (int4) faster at 1 row. That needs the ALU work to stay under
// the memory time: per weight and token ~1 PRMT + 2 fp32 ops (int4 + 1 shift/mask per 8) and the x
// conversion shared by the warp's 2 * GU_RPW rows: at 1 row ~8.6 G weights x 3 ops / 8.6 us (int4)
// is within the H200's ~67 TFLOP/s fp32 + 33 Tops int32, but at 4+ tokens per expert the GEMV
// becomes ALU-bound (int4 first), so the gain at 16 rows (~6 tokens per expert) is expected lower
// (~1.5-2x); a tensor-core GEMV (mma with dequantized A fragments) is the next step if it matters.
// Down rows have d_ff = 1408 = 88 int8 / 44 int4 chunks: the last chunk slot of a lane is predicated
// (int4 leaves 20 of 64 slots idle; loads, not lanes, are what bound the kernel).
#include <algorithm>

#include "common.cuh"
#include "cuda_check.h"
#include "expert_group.h"
#include "moe_cuda_quant.h"
#include "quant_dequant.cuh"

namespace moe::cuda {
namespace {

constexpr int WARPS = 8;
constexpr int THREADS = WARPS * 32;
constexpr int GU_RPW = 2;    // intermediate rows (each a gate and an up row) per warp
constexpr int DOWN_RPW = 4;  // output rows per warp in q_down_gemv
constexpr int MAX_CH = 4;    // 16-byte chunks per lane per row (template bound)

size_t align_up(size_t v) { return (v + 255) & ~size_t(255); }

struct WsLayout {
  size_t counts, offsets, active, n_active, pos, sorted, h, total;
};

WsLayout ws_layout(int rows, int k, int n_experts, int d_ff) {
  WsLayout W{};
  const size_t entries = static_cast<size_t>(rows) * k;
  size_t off = 0;
  auto take = [&](size_t bytes) { size_t at = off; off += align_up(bytes); return at; };
  W.counts = take(sizeof(int32_t) * n_experts);
  W.offsets = take(sizeof(int32_t) * (n_experts + 1));
  W.active = take(sizeof(int32_t) * n_experts);
  W.n_active = take(sizeof(int32_t));
  W.pos = take(sizeof(int32_t) * entries);
  W.sorted = take(sizeof(int32_t) * entries);
  W.h = take(sizeof(bf16) * entries * d_ff);
  W.total = off;
  return W;
}

// Weights per 16-byte chunk: 16 int8 or 32 int4.
template <int DT>
constexpr int kEpc = DT == 1 ? 16 : 32;

// sum_j q_j * xf_j over one chunk (xf: kEpc<DT> fp32 activations of the chunk's columns).
template <int DT>
__device__ __forceinline__ float dot_chunk(const uint4& w, const float* xf) {
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
  float s0 = 0.f, s1 = 0.f;  // two chains: half the FMA latency per row
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (DT == 1) {
      float f[4];
      qdetail::int8x4_to_f32(words[k], f);
      s0 = fmaf(f[0], xf[4 * k + 0], s0);
      s1 = fmaf(f[1], xf[4 * k + 1], s1);
      s0 = fmaf(f[2], xf[4 * k + 2], s0);
      s1 = fmaf(f[3], xf[4 * k + 3], s1);
    } else {
      float f[8];
      qdetail::int4x8_to_f32(words[k], f);
#pragma unroll
      for (int j = 0; j < 8; j += 2) {
        s0 = fmaf(f[j], xf[8 * k + j], s0);
        s1 = fmaf(f[j + 1], xf[8 * k + j + 1], s1);
      }
    }
  }
  return s0 + s1;
}

template <int DT>
__device__ __forceinline__ float chunk_sum(const float* xf) {
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kEpc<DT>; ++j) s += xf[j];
  return s;
}

// Per-(row, chunk) dequantization constants of one matrix: int8 the row's scale (same for every
// chunk), int4 the chunk's group scale and zero.
struct ChunkQ {
  float s, z;
};

template <int DT>
__device__ __forceinline__ ChunkQ load_chunk_q(const uint8_t* blob, size_t scale_off, size_t zero_off, int row, int cols,
                                               int group, int chunk) {
  if constexpr (DT == 1) {
    return {__ldg(reinterpret_cast<const float*>(blob + scale_off) + row), 0.f};
  } else {
    const size_t gi = static_cast<size_t>(row) * (cols / group) + (chunk * 32) / group;
    return {qdetail::f16_at(blob + scale_off, gi), qdetail::f16_at(blob + zero_off, gi)};
  }
}

// Contribution of one chunk to a row's dot: int8 the raw sum q.x (scaled per row at the end),
// int4 s * (q.x - z * sum x).
template <int DT>
__device__ __forceinline__ float chunk_term(const uint4& w, const float* xf, float xs, const ChunkQ& q) {
  const float d = dot_chunk<DT>(qdetail::opaque(w), xf);
  if constexpr (DT == 1) return d;
  else return q.s * fmaf(-q.z, xs, d);
}

template <int DT>
__device__ __forceinline__ float row_finish(float acc, const ChunkQ& q) {
  if constexpr (DT == 1) return acc * q.s;
  else return acc;
}

// NCH = ceil(hidden / epc / 32): chunks per lane per row (the last one predicated).
template <int DT, int NCH>
__global__ void __launch_bounds__(THREADS) q_gate_up_gemv(const bf16* __restrict__ x, int x_stride, int topk,
                                                          const int32_t* __restrict__ offsets,
                                                          const int32_t* __restrict__ active,
                                                          const int32_t* __restrict__ n_active,
                                                          const int32_t* __restrict__ sorted,
                                                          const uint8_t* const* __restrict__ blobs, QuantLayout L,
                                                          bf16* __restrict__ h) {
  constexpr int EPC = kEpc<DT>;
  const int slot = blockIdx.x;
  if (slot >= *n_active) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int i0 = (blockIdx.y * WARPS + warp) * GU_RPW;
  if (i0 >= L.d_ff) return;
  const int e = active[slot];
  const int begin = offsets[e], end = offsets[e + 1];
  const uint8_t* blob = blobs[e];
  const int chunks = L.hidden / EPC;
  // Row i starts at byte i * hidden (int8) or i * hidden / 2 (int4): chunk i * chunks either way.
  const uint4* gq = reinterpret_cast<const uint4*>(blob + L.gate_q);
  const uint4* uq = reinterpret_cast<const uint4*>(blob + L.up_q);

  uint4 wg[GU_RPW][NCH], wu[GU_RPW][NCH];
  ChunkQ cg[GU_RPW][NCH], cu[GU_RPW][NCH];
#pragma unroll
  for (int r = 0; r < GU_RPW; ++r) {
    const int i = i0 + r;
#pragma unroll
    for (int c = 0; c < NCH; ++c) {
      const int idx = lane + 32 * c;
      const bool ok = i < L.d_ff && idx < chunks;
      const size_t at = static_cast<size_t>(i) * chunks + idx;  // 16-byte chunk index in the matrix
      wg[r][c] = ok ? __ldg(gq + at) : make_uint4(0, 0, 0, 0);
      wu[r][c] = ok ? __ldg(uq + at) : make_uint4(0, 0, 0, 0);
      cg[r][c] = ok ? load_chunk_q<DT>(blob, L.gate_scale, L.gate_zero, i, L.hidden, L.group, idx) : ChunkQ{0.f, 0.f};
      cu[r][c] = ok ? load_chunk_q<DT>(blob, L.up_scale, L.up_zero, i, L.hidden, L.group, idx) : ChunkQ{0.f, 0.f};
    }
  }
  for (int p = begin; p < end; ++p) {
    const int t = sorted[p] / topk;
    const bf16* xr = x + static_cast<int64_t>(t) * x_stride;
    float ag[GU_RPW] = {}, au[GU_RPW] = {};
#pragma unroll
    for (int c = 0; c < NCH; ++c) {
      const int idx = lane + 32 * c;
      if (idx < chunks) {
        float xf[EPC];
        qdetail::load_bf16_f32<EPC / 8>(xr + static_cast<int64_t>(idx) * EPC, xf);
        const float xs = DT == 2 ? chunk_sum<DT>(xf) : 0.f;
#pragma unroll
        for (int r = 0; r < GU_RPW; ++r) {
          ag[r] += chunk_term<DT>(wg[r][c], xf, xs, cg[r][c]);
          au[r] += chunk_term<DT>(wu[r][c], xf, xs, cu[r][c]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < GU_RPW; ++r) {
      // int8: the row scale is the same in every chunk; lane 0 always holds chunk 0 of a valid row.
      const float g = row_finish<DT>(detail::warp_sum(ag[r]), cg[r][0]);
      const float u = row_finish<DT>(detail::warp_sum(au[r]), cu[r][0]);
      if (lane == 0 && i0 + r < L.d_ff) h[static_cast<int64_t>(p) * L.d_ff + i0 + r] = __float2bfloat16(detail::silu(g) * u);
    }
  }
}

// DCH = ceil(d_ff / epc / 32): chunks per lane per down row (the last one predicated).
template <int DT, int DCH>
__global__ void __launch_bounds__(THREADS) q_down_gemv(const bf16* __restrict__ h, const int32_t* __restrict__ offsets,
                                                       const int32_t* __restrict__ active,
                                                       const int32_t* __restrict__ n_active,
                                                       const int32_t* __restrict__ sorted,
                                                       const float* __restrict__ route_weight,
                                                       const uint8_t* const* __restrict__ blobs, QuantLayout L,
                                                       float* __restrict__ ybuf) {
  constexpr int EPC = kEpc<DT>;
  const int slot = blockIdx.x;
  if (slot >= *n_active) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r0 = (blockIdx.y * WARPS + warp) * DOWN_RPW;
  if (r0 >= L.hidden) return;
  const int e = active[slot];
  const int begin = offsets[e], end = offsets[e + 1];
  const uint8_t* blob = blobs[e];
  const int chunks = L.d_ff / EPC;
  const uint4* dq = reinterpret_cast<const uint4*>(blob + L.down_q);
  uint4 w[DOWN_RPW][DCH];
  ChunkQ cq[DOWN_RPW][DCH];
#pragma unroll
  for (int r = 0; r < DOWN_RPW; ++r) {
    const int row = r0 + r;
#pragma unroll
    for (int c = 0; c < DCH; ++c) {
      const int idx = lane + 32 * c;
      const bool ok = row < L.hidden && idx < chunks;
      w[r][c] = ok ? __ldg(dq + static_cast<size_t>(row) * chunks + idx) : make_uint4(0, 0, 0, 0);
      cq[r][c] = ok ? load_chunk_q<DT>(blob, L.down_scale, L.down_zero, row, L.d_ff, L.group, idx) : ChunkQ{0.f, 0.f};
    }
  }
  for (int p = begin; p < end; ++p) {
    const bf16* hr = h + static_cast<int64_t>(p) * L.d_ff;
    float s[DOWN_RPW] = {};
#pragma unroll
    for (int c = 0; c < DCH; ++c) {
      const int idx = lane + 32 * c;
      if (idx < chunks) {
        float hf[EPC];
        qdetail::load_bf16_f32<EPC / 8>(hr + static_cast<int64_t>(idx) * EPC, hf);
        const float hs = DT == 2 ? chunk_sum<DT>(hf) : 0.f;
#pragma unroll
        for (int r = 0; r < DOWN_RPW; ++r) s[r] += chunk_term<DT>(w[r][c], hf, hs, cq[r][c]);
      }
    }
    const int entry = sorted[p];
    const float rw = route_weight[entry];
#pragma unroll
    for (int r = 0; r < DOWN_RPW; ++r) {
      const float v = row_finish<DT>(detail::warp_sum(s[r]), cq[r][0]);
      if (lane == 0 && r0 + r < L.hidden) ybuf[static_cast<int64_t>(entry) * L.hidden + r0 + r] = v * rw;
    }
  }
}

struct Launch {
  dim3 g1, g2;
  cudaStream_t stream;
  const bf16* x;
  int x_stride, k;
  const int32_t *offsets, *active, *n_active, *sorted;
  const float* weight;
  const uint8_t* const* blobs;
  QuantLayout L;
  bf16* h;
  float* ybuf;
};

template <int DT, int NCH>
void launch_gate_up(const Launch& a) {
  q_gate_up_gemv<DT, NCH><<<a.g1, THREADS, 0, a.stream>>>(a.x, a.x_stride, a.k, a.offsets, a.active, a.n_active, a.sorted,
                                                          a.blobs, a.L, a.h);
}
template <int DT, int DCH>
void launch_down(const Launch& a) {
  q_down_gemv<DT, DCH><<<a.g2, THREADS, 0, a.stream>>>(a.h, a.offsets, a.active, a.n_active, a.sorted, a.weight, a.blobs,
                                                       a.L, a.ybuf);
}

template <int DT>
void launch_all(const Launch& a) {
  constexpr int EPC = kEpc<DT>;
  switch ((a.L.hidden / EPC + 31) / 32) {
    case 1: launch_gate_up<DT, 1>(a); break;
    case 2: launch_gate_up<DT, 2>(a); break;
    case 3: launch_gate_up<DT, 3>(a); break;
    default: launch_gate_up<DT, MAX_CH>(a); break;
  }
  CUDA_CHECK_LAUNCH();
  switch ((a.L.d_ff / EPC + 31) / 32) {
    case 1: launch_down<DT, 1>(a); break;
    case 2: launch_down<DT, 2>(a); break;
    case 3: launch_down<DT, 3>(a); break;
    default: launch_down<DT, MAX_CH>(a); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

QuantLayout to_quant_layout(const moe::quant::ExpertLayout& E) {
  if (E.dtype == moe::quant::ExpertDType::BF16) {
    throw CudaError("to_quant_layout: bf16 experts have no quantized layout (use the bf16 expert kernels)");
  }
  QuantLayout L{};
  L.dtype = static_cast<int>(E.dtype);
  L.hidden = E.hidden;
  L.d_ff = E.d_ff;
  L.group = E.group;
  L.gate_q = E.gate.q;
  L.up_q = E.up.q;
  L.down_q = E.down.q;
  L.gate_scale = E.gate.scale;
  L.up_scale = E.up.scale;
  L.down_scale = E.down.scale;
  L.gate_zero = E.gate.zero;
  L.up_zero = E.up.zero;
  L.down_zero = E.down.zero;
  return L;
}

bool expert_ffn_q_supported(const QuantLayout& L, int n_experts) {
  if (n_experts <= 0 || n_experts > 256) return false;
  if (L.hidden <= 0 || L.d_ff <= 0 || L.hidden % 64 != 0 || L.d_ff % 64 != 0) return false;
  const size_t q[3] = {L.gate_q, L.up_q, L.down_q};
  for (size_t o : q)
    if (o % 16 != 0) return false;  // 16-byte weight loads
  if (L.dtype == static_cast<int>(moe::quant::ExpertDType::INT8)) {
    const size_t s[3] = {L.gate_scale, L.up_scale, L.down_scale};
    for (size_t o : s)
      if (o % 4 != 0) return false;
    return L.hidden <= 16 * 32 * MAX_CH && L.d_ff <= 16 * 32 * MAX_CH;
  }
  if (L.dtype == static_cast<int>(moe::quant::ExpertDType::INT4)) {
    const size_t s[6] = {L.gate_scale, L.up_scale, L.down_scale, L.gate_zero, L.up_zero, L.down_zero};
    for (size_t o : s)
      if (o % 2 != 0) return false;
    return L.group > 0 && L.group % 32 == 0 && L.hidden % L.group == 0 && L.d_ff % L.group == 0 &&
           L.hidden <= 32 * 32 * MAX_CH && L.d_ff <= 32 * 32 * MAX_CH;
  }
  return false;
}

size_t expert_ffn_decode_q_workspace_bytes(int rows, int k, int n_experts, const QuantLayout& L) {
  return ws_layout(rows, k, n_experts, L.d_ff).total;
}

void expert_ffn_decode_q_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                                 int n_experts, const uint8_t* const* blobs, const QuantLayout& L, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream, float* expert_out) {
  MOE_CUDA_REQUIRE(rows >= 0 && rows <= 32 && k > 0 && k <= n_experts);
  MOE_CUDA_REQUIRE(expert_ffn_q_supported(L, n_experts));
  MOE_CUDA_REQUIRE(x_stride >= L.hidden && x_stride % 8 == 0);
  MOE_CUDA_REQUIRE(expert_out != nullptr && blobs != nullptr);
  if (rows == 0) return;
  const WsLayout W = ws_layout(rows, k, n_experts, L.d_ff);
  MOE_CUDA_REQUIRE(workspace != nullptr && workspace_bytes >= W.total);
  char* ws = static_cast<char*>(workspace);
  auto i32 = [&](size_t off) { return reinterpret_cast<int32_t*>(ws + off); };
  const int entries = rows * k;
  detail::launch_group_small(expert, entries, n_experts, i32(W.counts), i32(W.offsets), i32(W.active), i32(W.n_active),
                             i32(W.pos), i32(W.sorted), stream);
  const int max_active = std::min(n_experts, entries);
  Launch a{};
  a.g1 = dim3(max_active, (L.d_ff + WARPS * GU_RPW - 1) / (WARPS * GU_RPW));
  a.g2 = dim3(max_active, (L.hidden + WARPS * DOWN_RPW - 1) / (WARPS * DOWN_RPW));
  a.stream = stream;
  a.x = x;
  a.x_stride = x_stride;
  a.k = k;
  a.offsets = i32(W.offsets);
  a.active = i32(W.active);
  a.n_active = i32(W.n_active);
  a.sorted = i32(W.sorted);
  a.weight = weight;
  a.blobs = blobs;
  a.L = L;
  a.h = reinterpret_cast<bf16*>(ws + W.h);
  a.ybuf = expert_out;
  if (L.dtype == static_cast<int>(moe::quant::ExpertDType::INT8)) launch_all<1>(a);
  else launch_all<2>(a);
}

}  // namespace moe::cuda
