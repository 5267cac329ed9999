// Token sampling on the device, one 1024-thread block per row.
//   greedy (temperature <= 0): arg-max, lowest index on ties. argmax_rows: the same, plus a count of
//   non-finite logits per row (the CUDA engine's greedy steps: tokens come back, the logits stay).
//   otherwise: p = softmax(logits / T); nucleus threshold tau found by a 16-way search over the
//   bit patterns of positive floats (8 passes over the row, each a deterministic block
//   reduction); then one draw u * (kept mass) located by a block scan in index order.
// Floor: reads vocab * 4 bytes per pass (400 KB at 102400, L2-resident after the first): greedy
// ~2 us; top-p ~10 passes -> ~20-40 us per row (rows run in parallel blocks). Small next to a
// ~2-5 ms decode step; a radix-select version would cut it if it ever matters.
#include "common.cuh"
#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {
namespace {

constexpr int THREADS = 1024;
constexpr int WAYS = 16;

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr int NO_INDEX = 0x7fffffff;

// Arg-max of one row by the whole block (larger value wins, then the lower index: the CPU sampler's
// order); the answer is valid in thread 0. NaN never wins; NO_INDEX when nothing beats -inf.
__device__ int block_argmax(const float* __restrict__ l, int vocab, int tid) {
  float best = -INFINITY;
  int best_i = NO_INDEX;
  for (int i = tid; i < vocab; i += THREADS) {
    const float v = l[i];
    if (v > best) { best = v; best_i = i; }  // strided ascending: first max has the lowest index
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (ov > best || (ov == best && oi < best_i)) { best = ov; best_i = oi; }
  }
  __shared__ float bv[32];
  __shared__ int bi[32];
  if ((tid & 31) == 0) { bv[tid >> 5] = best; bi[tid >> 5] = best_i; }
  __syncthreads();
  if (tid < 32) {
    best = bv[tid];
    best_i = bi[tid];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
      if (ov > best || (ov == best && oi < best_i)) { best = ov; best_i = oi; }
    }
  }
  return best_i;
}

// The engine's device-side greedy step: per row the arg-max and how many logits are NaN or infinite
// (the engine then brings the row to the host to name the first one, as its host check does).
__global__ void __launch_bounds__(THREADS)
    argmax_kernel(const float* __restrict__ logits, int vocab, int32_t* __restrict__ token_out,
                  int32_t* __restrict__ nonfinite_out) {
  __shared__ int bad;
  const int row = blockIdx.x, tid = threadIdx.x;
  const float* l = logits + static_cast<int64_t>(row) * vocab;
  if (tid == 0) bad = 0;
  __syncthreads();
  int mine = 0;
  for (int i = tid; i < vocab; i += THREADS) mine += isfinite(l[i]) ? 0 : 1;
  if (mine) atomicAdd(&bad, mine);
  const int best_i = block_argmax(l, vocab, tid);  // its __syncthreads orders the atomics before the read
  if (tid == 0) {
    token_out[row] = best_i == NO_INDEX ? 0 : best_i;
    nonfinite_out[row] = bad;
  }
}

__global__ void __launch_bounds__(THREADS)
    sample_kernel(const float* __restrict__ logits, int vocab, const float* __restrict__ temperature,
                  const float* __restrict__ top_p, uint64_t* rng_state, int32_t* __restrict__ token_out) {
  __shared__ float scratch[32];
  __shared__ float wsum[WAYS][32];
  __shared__ int found;
  __shared__ float chunk_prefix[THREADS];
  const int row = blockIdx.x, tid = threadIdx.x;
  const float* l = logits + static_cast<int64_t>(row) * vocab;
  const float T = temperature[row];

  if (!(T > 0.f)) {  // greedy; NaN temperature is treated as greedy too
    const int best_i = block_argmax(l, vocab, tid);
    // All -inf (or NaN) logits: best_i stays at the sentinel; answer token 0 rather than garbage.
    if (tid == 0) token_out[row] = best_i == NO_INDEX ? 0 : best_i;
    return;
  }

  const float invT = 1.f / T;
  float mx = -INFINITY;
  for (int i = tid; i < vocab; i += THREADS) mx = fmaxf(mx, l[i]);
  mx = detail::block_max(mx, scratch);
  float z = 0.f;
  for (int i = tid; i < vocab; i += THREADS) z += __expf((l[i] - mx) * invT);
  z = detail::block_sum(z, scratch);
  const float invZ = 1.f / z;
  auto prob = [&](int i) { return __expf((l[i] - mx) * invT) * invZ; };

  // tau = largest positive float (as bits) with mass(p >= tau) >= top_p. Invariant: ok(lo), !ok(hi).
  const float tp = top_p[row];
  uint32_t lo = 0u;
  if (tp < 1.f) {
    uint32_t hi = __float_as_uint(invZ) + 1u;  // the largest p is exp(0) * invZ
    const int lane = tid & 31, warp = tid >> 5;
    while (hi - lo > 1u) {
      const uint32_t step = (hi - lo + WAYS - 1) / WAYS;
      float part[WAYS];
#pragma unroll
      for (int w = 0; w < WAYS; ++w) part[w] = 0.f;
      for (int i = tid; i < vocab; i += THREADS) {
        const float p = prob(i);
        const uint32_t pb = __float_as_uint(p);
#pragma unroll
        for (int w = 1; w < WAYS; ++w) part[w] += pb >= lo + w * step ? p : 0.f;
      }
#pragma unroll
      for (int w = 1; w < WAYS; ++w) {
        const float s = detail::warp_sum(part[w]);
        if (lane == 0) wsum[w][warp] = s;
      }
      __syncthreads();
      if (warp == 0) {
        // Candidate w is ok when its mass reaches top_p; candidates past hi do not exist.
        int best_w = 0;
        for (int w = 1; w < WAYS; ++w) {
          const uint64_t cand = static_cast<uint64_t>(lo) + static_cast<uint64_t>(w) * step;
          if (cand >= hi) break;
          const float s = detail::warp_sum(wsum[w][lane]);
          if (s >= tp) best_w = w;
        }
        if (lane == 0) found = best_w;
      }
      __syncthreads();
      const uint32_t new_lo = lo + static_cast<uint32_t>(found) * step;
      const uint64_t cap = static_cast<uint64_t>(new_lo) + step;
      hi = static_cast<uint32_t>(cap < hi ? cap : hi);
      lo = new_lo;
      __syncthreads();  // `found` is rewritten next pass
    }
  }
  const float tau = __uint_as_float(lo);

  // Index-ordered draw: thread tid owns the contiguous chunk [c0, c1).
  const int chunk = (vocab + THREADS - 1) / THREADS;
  const int c0 = min(vocab, tid * chunk), c1 = min(vocab, c0 + chunk);
  float mine = 0.f;
  for (int i = c0; i < c1; ++i) {
    const float p = prob(i);
    mine += p >= tau ? p : 0.f;
  }
  chunk_prefix[tid] = mine;
  __syncthreads();
  // Inclusive scan of 1024 partial masses (Hillis-Steele; fixed order: deterministic).
  for (int off = 1; off < THREADS; off <<= 1) {
    const float add = tid >= off ? chunk_prefix[tid - off] : 0.f;
    __syncthreads();
    chunk_prefix[tid] += add;
    __syncthreads();
  }
  const float kept = chunk_prefix[THREADS - 1];
  const uint64_t state = rng_state[row];
  const double u01 = static_cast<double>(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
  const float u = static_cast<float>(u01 * static_cast<double>(kept));
  if (tid == 0) found = 0x7fffffff;
  __syncthreads();
  const float before = chunk_prefix[tid] - mine;
  if (mine > 0.f && u >= before && u < chunk_prefix[tid]) {
    float run = before;
    int pick = -1, last = -1;
    for (int i = c0; i < c1; ++i) {
      const float p = prob(i);
      if (p < tau) continue;
      last = i;
      run += p;
      if (u < run) { pick = i; break; }
    }
    atomicMin(&found, pick >= 0 ? pick : last);  // rounding in the re-sum: fall back to the chunk's last kept token
  }
  __syncthreads();
  if (tid == 0) {
    int tok = found;
    if (tok == 0x7fffffff) {  // u landed past the rounded total: the last kept token
      for (int i = vocab - 1; i >= 0; --i)
        if (prob(i) >= tau) { tok = i; break; }
      if (tok == 0x7fffffff) tok = 0;
    }
    token_out[row] = tok;
    rng_state[row] = state + 1;
  }
}

}  // namespace

void argmax_rows(const float* logits, int rows, int vocab, int32_t* token_out, int32_t* nonfinite_out, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && vocab > 0);
  if (rows == 0) return;
  argmax_kernel<<<rows, THREADS, 0, stream>>>(logits, vocab, token_out, nonfinite_out);
  CUDA_CHECK_LAUNCH();
}

void sample_tokens(const float* logits, int rows, int vocab, const float* temperature, const float* top_p,
                   uint64_t* rng_state, int32_t* token_out, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(rows >= 0 && vocab > 0);
  if (rows == 0) return;
  sample_kernel<<<rows, THREADS, 0, stream>>>(logits, vocab, temperature, top_p, rng_state, token_out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
