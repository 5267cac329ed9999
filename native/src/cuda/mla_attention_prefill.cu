// MLA attention for prefill (prompts from position 0), in the plain (non-absorbed) form:
// per head key = [k_nope | k_pe] (192), value = v (128). Flash-attention style: one block per
// (64-query tile, head, sequence), streaming 64-key tiles with an online softmax in fp32.
// This first version runs on the fp32 CUDA cores (no tensor cores).
// Floor: FLOPs. 16 prompts x 512 tokens x 16 heads, causal: 2 * (192 + 128) * 16 * 16 * 512^2 / 2
// = 21.5 GFLOP per layer -> ~0.03 ms at ~700 TFLOP/s bf16 tensor rate, ~0.4 ms at ~60 TFLOP/s fp32
// FMA rate, which bounds this SIMT version (x 27 layers: ~10 ms of a 16 x 512 prefill). Moving
// Q.K^T and P.V onto mma.sync/wgmma is the known next step.
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

constexpr int NOPE = 128, ROPE = 64, VD = 128, QK = NOPE + ROPE, KVB = NOPE + VD;
constexpr int TQ = 64, TK = 64, THREADS = 256;
constexpr int LDP = TK + 1;

struct PrefillSmem {
  __align__(16) bf16 qt[QK][TQ];  // transposed: qt[d][row]
  __align__(16) bf16 kt[QK][TK];  // transposed: kt[d][key]
  __align__(16) bf16 v[TK][VD];
  float p[TQ][LDP];
};

__device__ __forceinline__ void load4(const bf16* p, float* f) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
  const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
  f[0] = a.x; f[1] = a.y; f[2] = b.x; f[3] = b.y;
}

__global__ void __launch_bounds__(THREADS)
    prefill_kernel(const bf16* __restrict__ q, int q_stride, const bf16* __restrict__ kv, const bf16* __restrict__ k_pe,
                   int k_pe_stride, const int32_t* __restrict__ seq_start, int heads, float scale,
                   bf16* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  PrefillSmem& S = *reinterpret_cast<PrefillSmem*>(smem_raw);
  const int q0 = blockIdx.x * TQ, h = blockIdx.y, s = blockIdx.z;
  const int start = seq_start[s];
  const int len = seq_start[s + 1] - start;
  if (q0 >= len) return;
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;

  // Q tile, transposed; rows past the end are zero.
  for (int i = tid; i < TQ * (QK / 8); i += THREADS) {
    const int r = i % TQ, dc = (i / TQ) * 8;
    float f[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (q0 + r < len) detail::load8(q + static_cast<int64_t>(start + q0 + r) * q_stride + h * QK + dc, f);
#pragma unroll
    for (int j = 0; j < 8; ++j) S.qt[dc + j][r] = __float2bfloat16(f[j]);
  }

  float o[4][8];
  float m_run[4], l_run[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m_run[i] = -INFINITY;
    l_run[i] = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) o[i][j] = 0.f;
  }

  const int k_end = min(len, q0 + TQ);  // causal: no key past the tile's last query
  for (int k0 = 0; k0 < k_end; k0 += TK) {
    __syncthreads();  // previous tile consumed
    for (int i = tid; i < TK * (QK / 8); i += THREADS) {
      const int r = i % TK, dc = (i / TK) * 8;
      float f[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      if (k0 + r < len) {
        const int64_t row = start + k0 + r;
        if (dc < NOPE)
          detail::load8(kv + (row * heads + h) * KVB + dc, f);
        else
          detail::load8(k_pe + row * k_pe_stride + (dc - NOPE), f);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) S.kt[dc + j][r] = __float2bfloat16(f[j]);
    }
    for (int i = tid; i < TK * (VD / 8); i += THREADS) {
      const int r = i / (VD / 8), c = (i % (VD / 8)) * 8;
      uint4 u = make_uint4(0u, 0u, 0u, 0u);  // zero rows: 0 * garbage could be NaN
      if (k0 + r < len)
        u = *reinterpret_cast<const uint4*>(kv + ((static_cast<int64_t>(start) + k0 + r) * heads + h) * KVB + NOPE + c);
      *reinterpret_cast<uint4*>(&S.v[r][c]) = u;
    }
    __syncthreads();

    float sc[4][4] = {};
#pragma unroll 8
    for (int d = 0; d < QK; ++d) {
      float a[4], b[4];
      load4(&S.qt[d][ty * 4], a);
      load4(&S.kt[d][tx * 4], b);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) sc[i][j] += a[i] * b[j];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int qi = q0 + ty * 4 + i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kj = k0 + tx * 4 + j;
        sc[i][j] = (kj <= qi && kj < len) ? sc[i][j] * scale : -INFINITY;
        mx = fmaxf(mx, sc[i][j]);
      }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_new = fmaxf(m_run[i], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with no key yet
      const float alpha = __expf(m_run[i] - m_use);
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float p = __expf(sc[i][j] - m_use);
        S.p[ty * 4 + i][tx * 4 + j] = p;
        sum += p;
      }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      l_run[i] = l_run[i] * alpha + sum;
      m_run[i] = m_new;
#pragma unroll
      for (int j = 0; j < 8; ++j) o[i][j] *= alpha;
    }
    __syncthreads();
#pragma unroll 4
    for (int c = 0; c < TK; ++c) {
      float v[8];
      detail::load8(&S.v[c][tx * 8], v);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float p = S.p[ty * 4 + i][c];
#pragma unroll
        for (int j = 0; j < 8; ++j) o[i][j] += p * v[j];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int qi = q0 + ty * 4 + i;
    if (qi >= len) continue;
    const float inv = 1.f / l_run[i];
    float f[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = o[i][j] * inv;
    detail::store8(out + (static_cast<int64_t>(start + qi) * heads + h) * VD + tx * 8, f);
  }
}

}  // namespace

void mla_attention_prefill_strided(const bf16* q, int q_stride, const bf16* kv, const bf16* k_pe, int k_pe_stride,
                                   const int32_t* seq_start, int seqs, int max_len, int heads, float scale, bf16* out,
                                   cudaStream_t stream) {
  MOE_CUDA_REQUIRE(seqs >= 0 && max_len >= 0 && heads > 0 && k_pe_stride >= ROPE && k_pe_stride % 8 == 0);
  MOE_CUDA_REQUIRE(q_stride >= heads * QK && q_stride % 8 == 0);
  if (seqs == 0 || max_len == 0) return;
  const size_t smem = sizeof(PrefillSmem);
  CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid((max_len + TQ - 1) / TQ, heads, seqs);
  prefill_kernel<<<grid, THREADS, smem, stream>>>(q, q_stride, kv, k_pe, k_pe_stride, seq_start, heads, scale, out);
  CUDA_CHECK_LAUNCH();
}

void mla_attention_prefill(const bf16* q, const bf16* kv, const bf16* k_pe, int k_pe_stride,
                           const int32_t* seq_start, int seqs, int max_len, int heads, float scale, bf16* out,
                           cudaStream_t stream) {
  mla_attention_prefill_strided(q, heads * QK, kv, k_pe, k_pe_stride, seq_start, seqs, max_len, heads, scale, out,
                                stream);
}

}  // namespace moe::cuda
