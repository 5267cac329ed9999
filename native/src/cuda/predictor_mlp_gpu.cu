// The expert predictor on the GPU (predictor_mlp_gpu.h): one block per row.
// Floor: the arithmetic is tiny (~31 x 256 + 256 x 64 multiply-adds per row, ~100 KB of weights read from
// L2), but each output is one dependent chain of multiply-adds (the CPU's order), so the kernel is bound by
// load latency, and a call by that plus its launch, copies and synchronisation. The first version, whose
// chains waited on one global load per step, took 40 us per call at 1 row on an idle H200 (the CPU: 6.5 us):
// hence the batched and shared-memory-staged loads below.
#include "predictor_mlp_gpu.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "cuda_check.h"
#include "moe/error.h"

namespace moe::cuda {
namespace {

constexpr int kMaxThreads = 1024;
constexpr int kBatch = 16;         // layer 0: weight loads one thread has in flight before its multiply-adds
constexpr int kTileFloats = 8192;  // later layers: weight rows staged in shared memory per pass (32 KB)

struct LayerDesc {
  int in, out;
  int64_t w, b;  // offsets (floats, multiples of 4) of weight_t [in][out] and bias [out] in the parameters
};

struct Nz {  // PredictorMlpGpu::Nonzero as the kernel reads it
  int32_t index;
  float value;
};

struct Net {
  const float* params;
  const LayerDesc* layers;
  int n_layers, act, tile, max_nonzeros, E, budget;  // act: floats per activation buffer, a multiple of 4
  double min_logit;
};

// Block r: row r. Every output is bias, then fmaf per nonzero input in ascending order, as predictor_mlp.cpp
// accumulate_row (std::fma), so the sums are the CPU's; that order makes each output one dependent chain,
// so the speed comes from keeping the chains' weight loads off the critical path:
// - layer 0 reads only the row's nonzero inputs: thread o loads kBatch weights W0T[idx][o] (contiguous across
//   the block) into registers, then runs their multiply-adds;
// - later layers stage up to kTileFloats of W^T (whole input rows) in shared memory, loaded by all threads at
//   once, then each output's chain reads its column there; the running sums wait in the output buffer.
// Shared memory (floats): cur, nxt [act] (activations), tile [tile] (16-byte aligned), the row's nonzeros
// [max_nonzeros] values + [max_nonzeros] indices, ranks [budget].
__global__ void __launch_bounds__(kMaxThreads)
    predictor_kernel(Net net, const int32_t* __restrict__ row_start, const Nz* __restrict__ nz, int32_t* __restrict__ counts,
                     int32_t* __restrict__ ids, float* __restrict__ logits) {
  extern __shared__ float4 smem4[];  // float4: the tile's vector stores need 16-byte alignment
  float* cur = reinterpret_cast<float*>(smem4);
  float* nxt = cur + net.act;
  float* tile = nxt + net.act;
  float* nz_val = tile + net.tile;
  int* nz_idx = reinterpret_cast<int*>(nz_val + net.max_nonzeros);
  int* rank = nz_idx + net.max_nonzeros;
  const int tid = threadIdx.x, nt = blockDim.x, r = blockIdx.x;
  const int q0 = row_start[r], nnz = row_start[r + 1] - q0;
  for (int q = tid; q < nnz; q += nt) {
    const Nz p = nz[q0 + q];
    nz_idx[q] = p.index;
    nz_val[q] = p.value;
  }
  for (int j = tid; j < net.budget; j += nt) rank[j] = -1;
  __syncthreads();
  {
    const LayerDesc l = net.layers[0];
    for (int o = tid; o < l.out; o += nt) {
      const float* w = net.params + l.w + o;
      float y = net.params[l.b + o];
      for (int q = 0; q < nnz; q += kBatch) {
        float wq[kBatch];
#pragma unroll
        for (int j = 0; j < kBatch; ++j) wq[j] = q + j < nnz ? w[static_cast<int64_t>(nz_idx[q + j]) * l.out] : 0.f;
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
          if (q + j < nnz) y = fmaf(nz_val[q + j], wq[j], y);
        }
      }
      cur[o] = (net.n_layers > 1 && y < 0.f) ? 0.f : y;  // ReLU as the CPU's (v < 0 -> 0; keeps -0 and NaN)
    }
  }
  for (int n = 1; n < net.n_layers; ++n) {
    const LayerDesc l = net.layers[n];
    const int rows = net.tile / l.out;  // >= 1: tile >= every later layer's width
    __syncthreads();                    // cur complete; nobody reads nxt (the layer before's input) any more
    for (int o = tid; o < l.out; o += nt) nxt[o] = net.params[l.b + o];
    for (int c0 = 0; c0 < l.in; c0 += rows) {
      const int c1 = min(l.in, c0 + rows);
      if (c0 > 0) __syncthreads();  // the pass before has read its tile
      const float* src = net.params + l.w + static_cast<int64_t>(c0) * l.out;
      const int count = (c1 - c0) * l.out;
      if (l.out % 4 == 0) {  // then src is 16-byte aligned (offsets are multiples of 4 floats)
#pragma unroll 8
        for (int x = tid; x < count / 4; x += nt) reinterpret_cast<float4*>(tile)[x] = reinterpret_cast<const float4*>(src)[x];
      } else {
#pragma unroll 8
        for (int x = tid; x < count; x += nt) tile[x] = src[x];
      }
      __syncthreads();
      for (int o = tid; o < l.out; o += nt) {
        float y = nxt[o];
        for (int q = c0; q < c1; ++q) {
          const float v = cur[q];
          const float w = tile[(q - c0) * l.out + o];
          if (v != 0.f) y = fmaf(v, w, y);  // the CPU skips zero inputs
        }
        nxt[o] = y;
      }
    }
    if (n + 1 < net.n_layers) {
      for (int o = tid; o < l.out; o += nt) {
        if (nxt[o] < 0.f) nxt[o] = 0.f;
      }
    }
    float* t = cur;
    cur = nxt;
    nxt = t;
  }
  __syncthreads();
  // Top `budget`: expert e's place is the number of experts before it in (logit descending, id ascending),
  // the order of the CPU's insertion (metrics.ts topIndices) for finite logits; in parallel, one per thread.
  for (int e = tid; e < net.E; e += nt) {
    const float x = cur[e];
    int place = 0;
    for (int f = 0; f < net.E; ++f) {
      const float z = cur[f];
      place += (z > x || (z == x && f < e)) ? 1 : 0;
    }
    if (place < net.budget) rank[place] = e;
    if (logits != nullptr) logits[static_cast<int64_t>(r) * net.E + e] = x;
  }
  __syncthreads();
  if (tid == 0) {  // the gate, in rank order (annotate.ts applyPredictions); -1: a NaN left a hole
    int kept = 0;
    for (int j = 0; j < net.budget; ++j) {
      const int e = rank[j];
      if (e >= 0 && static_cast<double>(cur[e]) >= net.min_logit) ids[static_cast<int64_t>(r) * net.budget + kept++] = e;
    }
    counts[r] = kept;
  }
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

void* host_alloc(size_t bytes, bool mapped) {
  void* p = nullptr;
  CUDA_CHECK(cudaHostAlloc(&p, bytes, mapped ? cudaHostAllocMapped : cudaHostAllocDefault));
  return p;
}

char* mapped_pointer(void* host) {
  void* d = nullptr;
  CUDA_CHECK(cudaHostGetDevicePointer(&d, host, 0));
  return static_cast<char*>(d);
}

}  // namespace

void PredictorMlpGpu::Free::operator()(void* p) const { cudaFree(p); }
void PredictorMlpGpu::FreeHost::operator()(void* p) const { cudaFreeHost(p); }

PredictorMlpGpu::PredictorMlpGpu(const offload::PredictorMlp& mlp, int max_rows, PredictorTransfer transfer)
    : max_rows_(max_rows), mapped_(transfer == PredictorTransfer::Mapped) {
  static_assert(sizeof(Nonzero) == sizeof(Nz), "the kernel reads the staging's pairs as Nz");
  MOE_CUDA_REQUIRE(max_rows >= 1);
  const offload::PredictorModel& src = mlp.model();
  // The model without its weights (those go to the device): the geometry and blocks row_inputs reads.
  m_ = src;
  m_.layers = {};
  for (const offload::PredictorBlock& b : src.blocks) max_nonzeros_ += b.kind == offload::PredictorBlock::Kind::Layer ? 1 : src.top_k;

  // All weights and biases in one buffer (each array at a multiple of 4 floats), one LayerDesc per layer.
  auto pad4 = [](size_t n) { return (n + 3) / 4 * 4; };
  std::vector<LayerDesc> desc;
  size_t floats = 0;
  for (const offload::PredictorLayer& l : src.layers) {
    const size_t w = floats, b = w + pad4(l.weight_t.size());
    desc.push_back(LayerDesc{l.in, l.out, static_cast<int64_t>(w), static_cast<int64_t>(b)});
    floats = b + pad4(l.bias.size());
    max_width_ = std::max(max_width_, l.out);
    if (desc.size() > 1) tile_ = std::max({tile_, kTileFloats, l.out});
  }
  n_layers_ = static_cast<int>(desc.size());
  act_ = static_cast<int>(pad4(static_cast<size_t>(max_width_)));
  std::vector<float> params(floats, 0.f);
  for (size_t n = 0; n < src.layers.size(); ++n) {
    std::copy(src.layers[n].weight_t.begin(), src.layers[n].weight_t.end(), params.begin() + desc[n].w);
    std::copy(src.layers[n].bias.begin(), src.layers[n].bias.end(), params.begin() + desc[n].b);
  }
  params_.reset(device_alloc(floats * sizeof(float)));
  layers_.reset(device_alloc(desc.size() * sizeof(LayerDesc)));
  CUDA_CHECK(cudaMemcpy(params_.get(), params.data(), floats * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(layers_.get(), desc.data(), desc.size() * sizeof(LayerDesc), cudaMemcpyHostToDevice));

  // Threads: one per output of the widest layer (a warp multiple); wider layers loop.
  threads_ = std::min(kMaxThreads, (max_width_ + 31) / 32 * 32);
  smem_bytes_ = (2 * static_cast<size_t>(act_) + tile_ + 2 * static_cast<size_t>(max_nonzeros_) + m_.budget) * sizeof(float);
  if (smem_bytes_ > 48 * 1024) {  // beyond the default: opt in, up to what the device allows
    int device = 0, limit = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (smem_bytes_ > static_cast<size_t>(limit)) {
      throw Error("predictor on the GPU: layers of " + std::to_string(max_width_) + " units need " + std::to_string(smem_bytes_) +
                  " bytes of shared memory, the device has " + std::to_string(limit));
    }
    CUDA_CHECK(cudaFuncSetAttribute(predictor_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes_)));
  }

  // Staging, the same layout up and down: in = row starts [max_rows + 1] (padded to 8 bytes), then the
  // pairs; out = counts [n], ids [n * budget], logits [n * E], laid out for the call's n so that one copy
  // brings back exactly what was asked for.
  pairs_at_ = (static_cast<size_t>(max_rows) + 2) / 2 * 2 * sizeof(int32_t);
  const size_t in_bytes = pairs_at_ + static_cast<size_t>(max_rows) * max_nonzeros_ * sizeof(Nonzero);
  const size_t out_bytes = static_cast<size_t>(max_rows) * (1 + m_.budget + m_.num_experts) * sizeof(int32_t);
  in_host_.reset(host_alloc(in_bytes, mapped_));
  out_host_.reset(host_alloc(out_bytes, mapped_));
  if (mapped_) {
    in_kernel_ = mapped_pointer(in_host_.get());
    out_kernel_ = mapped_pointer(out_host_.get());
  } else {
    in_dev_.reset(device_alloc(in_bytes));
    out_dev_.reset(device_alloc(out_bytes));
    in_kernel_ = static_cast<char*>(in_dev_.get());
    out_kernel_ = static_cast<char*>(out_dev_.get());
  }
  inputs_.features.assign(static_cast<size_t>(mlp.feature_width()), 0.f);
}

PredictorMlpGpu::~PredictorMlpGpu() = default;

// Row `row`'s nonzero inputs in the order predict's layer 0 visits them: the CPU port's own
// (gather_predictor_inputs), so the two take the same inputs.
int PredictorMlpGpu::row_inputs(const PredictorRow& row, Nonzero* out) {
  offload::gather_predictor_inputs(m_, inputs_, row.experts, row.weights, row.length, row.t, row.i);
  int n = 0;
  for (int idx : inputs_.touched) {  // predict skips zero inputs (v == 0.f: continue)
    const float v = inputs_.features[static_cast<size_t>(idx)];
    if (v != 0.f) out[n++] = Nonzero{idx, v};  // touched has at most one entry per input added: <= max_nonzeros_
  }
  offload::clear_predictor_inputs(inputs_);
  return n;
}

int PredictorMlpGpu::predict_rows(cudaStream_t stream, const PredictorRow* rows, int n, int32_t* out_ids, int32_t* out_counts,
                                  float* out_logits) {
  MOE_CUDA_REQUIRE(n >= 0 && n <= max_rows_);
  if (n == 0) return 0;
  char* in = static_cast<char*>(in_host_.get());
  int32_t* start = reinterpret_cast<int32_t*>(in);
  Nonzero* pairs = reinterpret_cast<Nonzero*>(in + pairs_at_);
  int total = 0;
  for (int r = 0; r < n; ++r) {
    start[r] = total;
    total += row_inputs(rows[r], pairs + total);
  }
  start[n] = total;
  const int E = m_.num_experts;
  if (!mapped_) CUDA_CHECK(cudaMemcpyAsync(in_kernel_, in, pairs_at_ + static_cast<size_t>(total) * sizeof(Nonzero), cudaMemcpyHostToDevice, stream));
  const char* din = in_kernel_;
  int32_t* dout = reinterpret_cast<int32_t*>(out_kernel_);
  int32_t* d_counts = dout;
  int32_t* d_ids = dout + n;
  float* d_logits = out_logits != nullptr ? reinterpret_cast<float*>(d_ids + static_cast<size_t>(n) * m_.budget) : nullptr;
  const Net net{static_cast<const float*>(params_.get()), static_cast<const LayerDesc*>(layers_.get()), n_layers_, act_, tile_, max_nonzeros_, E, m_.budget,
                m_.min_logit};
  predictor_kernel<<<n, threads_, smem_bytes_, stream>>>(net, reinterpret_cast<const int32_t*>(din), reinterpret_cast<const Nz*>(din + pairs_at_), d_counts,
                                                         d_ids, d_logits);
  CUDA_CHECK_LAUNCH();
  const size_t out_bytes = static_cast<size_t>(n) * (1 + m_.budget + (out_logits != nullptr ? E : 0)) * sizeof(int32_t);
  if (!mapped_) CUDA_CHECK(cudaMemcpyAsync(out_host_.get(), dout, out_bytes, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  const int32_t* h = static_cast<const int32_t*>(out_host_.get());
  std::memcpy(out_counts, h, static_cast<size_t>(n) * sizeof(int32_t));
  std::memcpy(out_ids, h + n, static_cast<size_t>(n) * m_.budget * sizeof(int32_t));
  if (out_logits != nullptr) std::memcpy(out_logits, h + n + static_cast<size_t>(n) * m_.budget, static_cast<size_t>(n) * E * sizeof(float));
  int ids = 0;
  for (int r = 0; r < n; ++r) ids += out_counts[r];
  return ids;
}

}  // namespace moe::cuda
