// MLA decode attention on the compact latent cache, with W_kv_b absorbed into both sides.
// Three launches (all graph-capturable, shapes fixed by host bounds):
//   1. absorb_q:  q_lat[b, h, :512] = W_kb[h]^T q_nope[b, h]          grid (heads, ceil(B / 8))
//   2. attend:    split-K flash-decoding over the cache; one block = one row b, 16 heads, one span
//                 of tokens; all 16 heads share each cache tile (MLA is MQA in latent space), so
//                 the cache is read once per head group, not once per head.
//   3. absorb_v:  combine the splits (log-sum-exp) and out[b, h] = W_vb[h] o_lat[b, h]
// Floor (DeepSeek-V2-Lite, per layer): the cache (ctx * 1152 B per row) plus W_kv_b (4 MB,
// read once per 8 rows): batch 1, ctx 640: 0.7 MB + 4 MB -> ~1.5 us of traffic, so launch-bound
// (~3 x 3 us); batch 16, ctx 640: 11.8 MB + 8 MB -> ~6 us at ~3.3 TB/s. FLOPs are small
// (2 * 16 heads * ctx * (576 + 512) per row).
#include <algorithm>

#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

constexpr int NOPE = 128, ROPE = 64, VD = 128, LORA = 512, QK = NOPE + ROPE, KVB = NOPE + VD;
constexpr int WIDTH = LORA + ROPE;  // 576: one cache row
constexpr int HG = 16;              // heads per attend block
constexpr int TT = 32;              // cache rows per tile (= warp size: one score per lane)
constexpr int ATT_THREADS = 256;    // thread i owns latent dims 2i, 2i+1
constexpr int BCHUNK = 8;           // query rows per absorb block

size_t align_up(size_t v) { return (v + 255) & ~size_t(255); }

// Split plan: shared by the workspace size and the launcher so they always agree.
struct Plan {
  int splits, chunk;
};
Plan plan(int batch, int heads, int max_ctx) {
  const int groups = heads / HG;
  const int target_blocks = 264;  // ~2 waves of 132 SMs
  int splits = std::max(1, target_blocks / std::max(1, batch * groups));
  const int ctx = std::max(1, max_ctx);
  int chunk = (ctx + splits - 1) / splits;
  chunk = ((chunk + TT - 1) / TT) * TT;
  splits = (ctx + chunk - 1) / chunk;
  return {splits, chunk};
}

struct Ws {
  float *q_lat, *o, *ml;
};
size_t ws_bytes(int batch, int heads, const Plan& p, Ws* ws, void* base) {
  const size_t bh = static_cast<size_t>(batch) * heads;
  const size_t a = align_up(bh * LORA * sizeof(float));
  const size_t b = align_up(bh * p.splits * LORA * sizeof(float));
  const size_t c = align_up(bh * p.splits * 2 * sizeof(float));
  if (ws != nullptr) {
    char* w = static_cast<char*>(base);
    ws->q_lat = reinterpret_cast<float*>(w);
    ws->o = reinterpret_cast<float*>(w + a);
    ws->ml = reinterpret_cast<float*>(w + a + b);
  }
  return a + b + c;
}

// Block: 128 threads x 4 latent columns; BCHUNK query rows of one head.
__global__ void __launch_bounds__(128) absorb_q_kernel(const bf16* __restrict__ q, const bf16* __restrict__ kv_b,
                                                       int batch, int heads, float* __restrict__ q_lat) {
  __shared__ float qs[BCHUNK][NOPE];
  const int h = blockIdx.x, b0 = blockIdx.y * BCHUNK;
  const int nb = min(BCHUNK, batch - b0);
  for (int i = threadIdx.x; i < BCHUNK * NOPE; i += blockDim.x) {
    const int r = i / NOPE, d = i % NOPE;
    qs[r][d] = r < nb ? __bfloat162float(q[(static_cast<int64_t>(b0 + r) * heads + h) * QK + d]) : 0.f;
  }
  __syncthreads();
  const int c = threadIdx.x * 4;
  float acc[BCHUNK][4] = {};
  const bf16* w = kv_b + static_cast<int64_t>(h) * KVB * LORA + c;
#pragma unroll 4
  for (int d = 0; d < NOPE; ++d) {
    const uint2 u = *reinterpret_cast<const uint2*>(w + static_cast<int64_t>(d) * LORA);
    const float2 w01 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
    const float2 w23 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
#pragma unroll
    for (int r = 0; r < BCHUNK; ++r) {
      const float qv = qs[r][d];
      acc[r][0] += qv * w01.x;
      acc[r][1] += qv * w01.y;
      acc[r][2] += qv * w23.x;
      acc[r][3] += qv * w23.y;
    }
  }
  for (int r = 0; r < nb; ++r)
    *reinterpret_cast<float4*>(q_lat + (static_cast<int64_t>(b0 + r) * heads + h) * LORA + c) =
        make_float4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
}

struct AttendSmem {
  float q_lat[HG][LORA];
  float q_pe[HG][ROPE];
  __align__(16) bf16 kv[TT][WIDTH];
  float p[HG][TT];
  float alpha[HG];
};

__global__ void __launch_bounds__(ATT_THREADS)
    attend_kernel(const bf16* __restrict__ q, int q_stride, const float* __restrict__ q_lat, const bf16* __restrict__ cache,
                  int cache_stride, const int64_t* __restrict__ cache_start, const int32_t* __restrict__ seq_len,
                  int heads, int splits, int chunk, float scale, float* __restrict__ o_part,
                  float* __restrict__ ml_part) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  AttendSmem& S = *reinterpret_cast<AttendSmem*>(smem_raw);
  const int split = blockIdx.x, b = blockIdx.y, hg = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int len = seq_len[b];
  const int t_begin = split * chunk;
  const int t_end = min(len, t_begin + chunk);

  for (int i = tid; i < HG * LORA; i += ATT_THREADS) {
    const int h = i / LORA, c = i % LORA;
    S.q_lat[h][c] = q_lat[(static_cast<int64_t>(b) * heads + hg * HG + h) * LORA + c];
  }
  for (int i = tid; i < HG * ROPE; i += ATT_THREADS) {
    const int h = i / ROPE, c = i % ROPE;
    S.q_pe[h][c] = __bfloat162float(q[static_cast<int64_t>(b) * q_stride + (hg * HG + h) * QK + NOPE + c]);
  }

  // Running softmax state of head 2*warp + {0,1}, kept by every lane of that warp.
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};
  float2 acc[HG];
#pragma unroll
  for (int h = 0; h < HG; ++h) acc[h] = make_float2(0.f, 0.f);

  const bf16* base = cache + cache_start[b] * cache_stride;
  for (int t0 = t_begin; t0 < t_end; t0 += TT) {
    const int nt = min(TT, t_end - t0);
    __syncthreads();  // previous tile fully consumed (and q staged, on the first pass)
    for (int i = tid; i < nt * (WIDTH / 8); i += ATT_THREADS) {
      const int r = i / (WIDTH / 8), c = (i % (WIDTH / 8)) * 8;
      *reinterpret_cast<uint4*>(&S.kv[r][c]) =
          *reinterpret_cast<const uint4*>(base + static_cast<int64_t>(t0 + r) * cache_stride + c);
    }
    __syncthreads();
    // Scores: warp w takes rows w, w + 8, ...; lane covers latent pairs lane + 32 j and one rope pair.
    for (int r = warp; r < TT; r += ATT_THREADS / 32) {
      float part[HG];
#pragma unroll
      for (int h = 0; h < HG; ++h) part[h] = 0.f;
      if (r < nt) {
#pragma unroll
        for (int j = 0; j < LORA / 64; ++j) {
          const int c = 2 * (lane + 32 * j);
          const float2 kv = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&S.kv[r][c]));
#pragma unroll
          for (int h = 0; h < HG; ++h) {
            const float2 qq = *reinterpret_cast<const float2*>(&S.q_lat[h][c]);
            part[h] += qq.x * kv.x + qq.y * kv.y;
          }
        }
        const float2 kp = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&S.kv[r][LORA + 2 * lane]));
#pragma unroll
        for (int h = 0; h < HG; ++h) {
          const float2 qq = *reinterpret_cast<const float2*>(&S.q_pe[h][2 * lane]);
          part[h] += qq.x * kp.x + qq.y * kp.y;
        }
      }
#pragma unroll
      for (int h = 0; h < HG; ++h) {
        const float s = detail::warp_sum(part[h]);
        if (lane == 0) S.p[h][r] = r < nt ? s * scale : -INFINITY;
      }
    }
    __syncthreads();
    // Online softmax: warp w owns heads 2w, 2w+1; lane = token of the tile.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int h = 2 * warp + i;
      const float s = S.p[h][lane];
      const float m_new = fmaxf(m_run[i], detail::warp_max(s));  // finite: nt >= 1
      const float p = lane < nt ? __expf(s - m_new) : 0.f;
      const float alpha = __expf(m_run[i] - m_new);  // 0 on the first tile (m_run = -inf)
      l_run[i] = l_run[i] * alpha + detail::warp_sum(p);
      m_run[i] = m_new;
      S.p[h][lane] = p;
      if (lane == 0) S.alpha[h] = alpha;
    }
    __syncthreads();
#pragma unroll
    for (int h = 0; h < HG; ++h) {
      const float a = S.alpha[h];
      acc[h].x *= a;
      acc[h].y *= a;
    }
    for (int r = 0; r < nt; ++r) {
      const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&S.kv[r][2 * tid]));
#pragma unroll
      for (int h = 0; h < HG; ++h) {
        const float p = S.p[h][r];
        acc[h].x += p * v.x;
        acc[h].y += p * v.y;
      }
    }
  }
  // Partial results of this split (unnormalised; an empty split leaves m = -inf, l = 0, o = 0).
  for (int h = 0; h < HG; ++h) {
    const int64_t bh = static_cast<int64_t>(b) * heads + hg * HG + h;
    *reinterpret_cast<float2*>(o_part + (bh * splits + split) * LORA + 2 * tid) = acc[h];
  }
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int64_t bh = static_cast<int64_t>(b) * heads + hg * HG + 2 * warp + i;
      ml_part[(bh * splits + split) * 2] = m_run[i];
      ml_part[(bh * splits + split) * 2 + 1] = l_run[i];
    }
  }
}

// Block: 4 warps x 32 output rows each; lanes split the 512 latent dims; BCHUNK query rows.
__global__ void __launch_bounds__(128) absorb_v_kernel(const float* __restrict__ o_part,
                                                       const float* __restrict__ ml_part,
                                                       const bf16* __restrict__ kv_b, int batch, int heads,
                                                       int splits, bf16* __restrict__ out) {
  __shared__ __align__(16) float o_lat[BCHUNK][LORA];
  const int h = blockIdx.x, b0 = blockIdx.y * BCHUNK;
  const int nb = min(BCHUNK, batch - b0);
  for (int r = 0; r < BCHUNK; ++r) {
    if (r >= nb) {
      for (int c = threadIdx.x; c < LORA; c += blockDim.x) o_lat[r][c] = 0.f;
      continue;
    }
    const int64_t bh = static_cast<int64_t>(b0 + r) * heads + h;
    const float* ml = ml_part + bh * splits * 2;
    float M = -INFINITY;
    for (int s = 0; s < splits; ++s) M = fmaxf(M, ml[2 * s]);
    float L = 0.f;
    for (int s = 0; s < splits; ++s)
      if (ml[2 * s + 1] > 0.f) L += __expf(ml[2 * s] - M) * ml[2 * s + 1];
    const float invL = L > 0.f ? 1.f / L : 0.f;  // seq_len 0: zeros
    for (int c = threadIdx.x; c < LORA; c += blockDim.x) {
      float v = 0.f;
      for (int s = 0; s < splits; ++s)
        if (ml[2 * s + 1] > 0.f) v += __expf(ml[2 * s] - M) * o_part[(bh * splits + s) * LORA + c];
      o_lat[r][c] = v * invL;
    }
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int j = warp; j < VD; j += 4) {
    const bf16* w = kv_b + (static_cast<int64_t>(h) * KVB + NOPE + j) * LORA;
    float acc[BCHUNK] = {};
#pragma unroll
    for (int part = 0; part < 2; ++part) {
      const int c = part * 256 + lane * 8;
      float wf[8];
      detail::load8(w + c, wf);
#pragma unroll
      for (int r = 0; r < BCHUNK; ++r) {
        const float4 a = *reinterpret_cast<const float4*>(&o_lat[r][c]);
        const float4 bq = *reinterpret_cast<const float4*>(&o_lat[r][c + 4]);
        acc[r] += wf[0] * a.x + wf[1] * a.y + wf[2] * a.z + wf[3] * a.w + wf[4] * bq.x + wf[5] * bq.y +
                  wf[6] * bq.z + wf[7] * bq.w;
      }
    }
#pragma unroll
    for (int r = 0; r < BCHUNK; ++r) {
      const float s = detail::warp_sum(acc[r]);
      if (lane == 0 && r < nb) out[(static_cast<int64_t>(b0 + r) * heads + h) * VD + j] = __float2bfloat16(s);
    }
  }
}

}  // namespace

size_t mla_decode_workspace_bytes(int batch, int heads, int max_ctx) {
  return ws_bytes(batch, heads, plan(batch, heads, max_ctx), nullptr, nullptr);
}

void mla_attention_decode(const bf16* q, const bf16* kv_b, const bf16* cache, int cache_stride,
                          const int64_t* cache_start, const int32_t* seq_len, int batch, int heads, int max_ctx,
                          float scale, bf16* out, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(batch >= 0 && heads > 0 && heads % HG == 0 && max_ctx >= 0);
  MOE_CUDA_REQUIRE(cache_stride >= WIDTH && cache_stride % 8 == 0);
  if (batch == 0) return;
  const Plan p = plan(batch, heads, max_ctx);
  Ws ws{};
  const size_t need = ws_bytes(batch, heads, p, &ws, workspace);
  MOE_CUDA_REQUIRE(workspace != nullptr && workspace_bytes >= need);

  const dim3 absorb_grid(heads, (batch + BCHUNK - 1) / BCHUNK);
  absorb_q_kernel<<<absorb_grid, 128, 0, stream>>>(q, kv_b, batch, heads, ws.q_lat);
  CUDA_CHECK_LAUNCH();

  const size_t smem = sizeof(AttendSmem);
  CUDA_CHECK(cudaFuncSetAttribute(attend_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  attend_kernel<<<dim3(p.splits, batch, heads / HG), ATT_THREADS, smem, stream>>>(
      q, heads * QK, ws.q_lat, cache, cache_stride, cache_start, seq_len, heads, p.splits, p.chunk, scale, ws.o, ws.ml);
  CUDA_CHECK_LAUNCH();

  absorb_v_kernel<<<absorb_grid, 128, 0, stream>>>(ws.o, ws.ml, kv_b, batch, heads, p.splits, out);
  CUDA_CHECK_LAUNCH();
}

// ---- variant with the absorbed projections on cuBLAS (strided-batched over heads) ----------------
// absorb_q_kernel / absorb_v_kernel above stream W_kv_b with one block per head (16 blocks on a
// 132-SM chip): latency-bound, ~30 us each at batch 1. cuBLAS spreads the same 4 MB over the chip.
namespace {

struct Ws2 {
  float *q_lat, *o, *ml;
  bf16* o_lat;
};
size_t ws2_bytes(int batch, int heads, const Plan& p, Ws2* ws, void* base) {
  Ws w1{};
  const size_t first = ws_bytes(batch, heads, p, ws ? &w1 : nullptr, base);
  const size_t extra = align_up(static_cast<size_t>(batch) * heads * LORA * sizeof(bf16));
  if (ws != nullptr) {
    ws->q_lat = w1.q_lat;
    ws->o = w1.o;
    ws->ml = w1.ml;
    ws->o_lat = reinterpret_cast<bf16*>(static_cast<char*>(base) + first);
  }
  return first + extra;
}

// Log-sum-exp combine of the splits into the normalised latent output, bf16 (the operand of the
// W_vb GEMM). One block of 128 threads per (row, head), 4 latent dims per thread.
__global__ void __launch_bounds__(128) combine_splits_kernel(const float* __restrict__ o_part,
                                                             const float* __restrict__ ml_part, int splits,
                                                             bf16* __restrict__ o_lat) {
  const int64_t bh = blockIdx.x;
  const float* ml = ml_part + bh * splits * 2;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, ml[2 * s]);
  float L = 0.f;
  for (int s = 0; s < splits; ++s)
    if (ml[2 * s + 1] > 0.f) L += __expf(ml[2 * s] - M) * ml[2 * s + 1];
  const float invL = L > 0.f ? 1.f / L : 0.f;  // seq_len 0: zeros
  const int c = threadIdx.x * 4;
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int s = 0; s < splits; ++s) {
    if (!(ml[2 * s + 1] > 0.f)) continue;
    const float a = __expf(ml[2 * s] - M);
    const float4 o = *reinterpret_cast<const float4*>(o_part + (bh * splits + s) * LORA + c);
    v.x += a * o.x; v.y += a * o.y; v.z += a * o.z; v.w += a * o.w;
  }
  __nv_bfloat162* dst = reinterpret_cast<__nv_bfloat162*>(o_lat + bh * LORA + c);
  dst[0] = __floats2bfloat162_rn(v.x * invL, v.y * invL);
  dst[1] = __floats2bfloat162_rn(v.z * invL, v.w * invL);
}

}  // namespace

size_t mla_decode_cublas_workspace_bytes(int batch, int heads, int max_ctx) {
  return ws2_bytes(batch, heads, plan(batch, heads, max_ctx), nullptr, nullptr);
}

void mla_attention_decode_cublas(cublasHandle_t handle, const bf16* q, int q_stride, const bf16* kv_b,
                                 const bf16* cache, int cache_stride, const int64_t* cache_start,
                                 const int32_t* seq_len, int batch, int heads, int max_ctx, float scale, bf16* out,
                                 int out_stride, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(handle != nullptr && batch >= 0 && heads > 0 && heads % HG == 0 && max_ctx >= 0);
  MOE_CUDA_REQUIRE(cache_stride >= WIDTH && cache_stride % 8 == 0);
  MOE_CUDA_REQUIRE(q_stride >= heads * QK && q_stride % 8 == 0 && out_stride >= heads * VD);
  if (batch == 0) return;
  const Plan p = plan(batch, heads, max_ctx);
  Ws2 ws{};
  const size_t need = ws2_bytes(batch, heads, p, &ws, workspace);
  MOE_CUDA_REQUIRE(workspace != nullptr && workspace_bytes >= need);
  bind_stream(handle, stream);
  const float one = 1.f, zero = 0.f;
  // q_lat[b, h] (512) = W_kb[h]^T q_nope[b, h]: column-major C[512, B] = A[512, 128] * B[128, B], where A
  // is W_kb[h] ([128, 512] row-major) read as column-major 512 x 128.
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, LORA, batch, NOPE, &one, kv_b, CUDA_R_16BF,
                                          LORA, static_cast<long long>(KVB) * LORA, q, CUDA_R_16BF, q_stride, QK,
                                          &zero, ws.q_lat, CUDA_R_32F, heads * LORA, LORA, heads, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT));
  const size_t smem = sizeof(AttendSmem);
  CUDA_CHECK(cudaFuncSetAttribute(attend_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  attend_kernel<<<dim3(p.splits, batch, heads / HG), ATT_THREADS, smem, stream>>>(
      q, q_stride, ws.q_lat, cache, cache_stride, cache_start, seq_len, heads, p.splits, p.chunk, scale, ws.o, ws.ml);
  CUDA_CHECK_LAUNCH();
  combine_splits_kernel<<<batch * heads, 128, 0, stream>>>(ws.o, ws.ml, p.splits, ws.o_lat);
  CUDA_CHECK_LAUNCH();
  // out[b, h] (128) = W_vb[h] o_lat[b, h]: C[128, B] = A^T[128, 512] * B[512, B], A = W_vb[h] read as
  // column-major 512 x 128.
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, VD, batch, LORA, &one,
                                          kv_b + static_cast<int64_t>(NOPE) * LORA, CUDA_R_16BF, LORA,
                                          static_cast<long long>(KVB) * LORA, ws.o_lat, CUDA_R_16BF, heads * LORA, LORA,
                                          &zero, out, CUDA_R_16BF, out_stride, VD, heads, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT));
}

}  // namespace moe::cuda
