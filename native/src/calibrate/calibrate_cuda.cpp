// GPU side of `calibrate` (built only with MOE_WITH_CUDA). Everything is timed with CUDA events on
// random data of the model's real shapes, through the kernel API of native/src/cuda/moe_cuda_kernels.h,
// in the order the CUDA backend (native/src/cuda_backend/cuda_layers.cpp) runs them; the backend
// itself is not used (it is owned elsewhere and changes independently). Where the backend's choices
// matter they are restated here: the decode attention in chunks of 64 rows (kAttnChunk), a cuBLAS
// workspace of 32 MB set once after the stream, CUDA graphs for decode steps.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "calibrate.h"
#include "cuda_check.h"
#include "cuda_resources.h"
#include "moe/error.h"
#include "moe/kernels.h"
#include "moe/tensor.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantize.h"
#include "moe_cuda_kernels.h"
#include "moe_cuda_quant.h"

namespace moe::calibrate {

namespace {

using cuda::bf16;

constexpr int kAttnChunk = 64;                      // CudaBackend::kAttnChunk
constexpr size_t kCublasWorkspace = size_t(32) << 20;  // CudaBackend's kCublasWorkspace
constexpr double kTargetSampleMs = 2.0;             // each sample spans at least this much GPU time
constexpr int kGemvMaxRows = 32;                    // CudaBackend::kGemvMaxRows (decode expert kernel up to here)

uint64_t lcg(uint64_t& s) {
  s = s * 6364136223846793005ull + 1442695040888963407ull;
  return s >> 33;
}

// Weights of one attention block (+ what follows it in a MoE or dense layer).
struct LayerW {
  Dev qkv_a, kv_b, o_proj;          // bf16
  Dev router, shared_gu, shared_down; // MoE layer
  Dev dense_gu, dense_down;         // dense layer
};

class CudaCalibratorImpl final : public CudaCalibrator {
 public:
  CudaCalibratorImpl(const ModelConfig& c, int expert_pool, int layer_copies, quant::ExpertDType dtype, int group) : c_(c) {
    if (expert_pool < 16) expert_pool = 16;  // copies of 16 experts back to back need 16 slots
    if (layer_copies < 1) layer_copies = 1;
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    if (count < 1) throw Error("calibrate: no CUDA device is visible");
    CUDA_CHECK(cudaSetDevice(0));
    H_ = c.hidden_size;
    heads_ = c.num_attention_heads;
    QK_ = c.qk_head_dim();
    q_out_ = heads_ * QK_;
    QW_ = q_out_ + c.kv_lora_rank + c.qk_rope_head_dim;
    width_ = c.kv_cache_width();
    vd_ = c.v_head_dim;
    dff_ = c.moe_intermediate_size;
    sff_ = c.n_shared_experts * c.moe_intermediate_size;
    E_ = c.n_routed_experts;
    k_ = c.num_experts_per_tok;
    eps_ = static_cast<float>(c.rms_norm_eps);
    expert_elems_ = static_cast<size_t>(3) * dff_ * H_;
    pool_ = expert_pool;
    // Issue 13: experts stored as the backend stores them for this dtype (one blob each).
    layout_ = quant::expert_layout(dtype, H_, dff_, group);
    quant_ = dtype != quant::ExpertDType::BF16;
    if (quant_) qlayout_ = cuda::to_quant_layout(layout_);

    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_[0], cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_[1], cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    cublas_ws_ = Dev(kCublasWorkspace);
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_ws_.p, kCublasWorkspace));

    // A random bf16 chunk tiled over every weight buffer (values of a trained model's scale).
    chunk_.resize(size_t(1) << 22);
    uint64_t seed = 7;
    for (uint16_t& v : chunk_) v = f32_to_bf16((static_cast<float>(lcg(seed) % 2001) - 1000.f) * 2e-5f);

    rope_ = make_rope_table(c);
    scale_ = attention_softmax_scale(c);
    inv_freq_ = upload_f32(rope_.inv_freq);
    input_norm_ = upload_f32(std::vector<float>(static_cast<size_t>(H_), 1.f));
    post_norm_ = upload_f32(std::vector<float>(static_cast<size_t>(H_), 1.f));
    kv_a_norm_ = upload_f32(std::vector<float>(static_cast<size_t>(c.kv_lora_rank), 1.f));

    // MoE-layer copies, cycled so that consecutive layers read different weights (as 26 real layers do).
    moe_.resize(static_cast<size_t>(layer_copies));
    for (LayerW& L : moe_) {
      attention_weights(L);
      L.router = rand_bf16(static_cast<size_t>(E_) * H_);
      if (sff_ > 0) {
        L.shared_gu = rand_bf16(static_cast<size_t>(2) * sff_ * H_);
        L.shared_down = rand_bf16(static_cast<size_t>(H_) * sff_);
      }
    }
    if (c.intermediate_size > 0) {
      attention_weights(dense_);
      dense_.dense_gu = rand_bf16(static_cast<size_t>(2) * c.intermediate_size * H_);
      dense_.dense_down = rand_bf16(static_cast<size_t>(H_) * c.intermediate_size);
    }
    final_norm_ = upload_f32(std::vector<float>(static_cast<size_t>(H_), 1.f));
    lm_head_ = rand_bf16(static_cast<size_t>(c.vocab_size) * H_);

    // Routed experts: [gate | up | down] each, pool_ of them. Pointer table j maps expert id e to pool
    // expert (j + e) % pool_, so a kernel call routed to expert 0 reads pool expert j, and one routed to
    // experts 0..m-1 (launch_ms) reads m distinct pool experts from j on. Quantized: pool_ copies of one
    // blob quantized from the random bf16 values (only the timing matters), and a blob table.
    if (quant_) {
      quantized_blob();
      experts_ = Dev(layout_.bytes * pool_);
      std::vector<const uint8_t*> tb;
      for (int j = 0; j < pool_; ++j) {
        CUDA_CHECK(cudaMemcpy(experts_.as<uint8_t>() + layout_.bytes * j, blob_.data(), layout_.bytes, cudaMemcpyHostToDevice));
      }
      for (int j = 0; j < pool_; ++j) {
        for (int e = 0; e < E_; ++e) tb.push_back(experts_.as<uint8_t>() + layout_.bytes * ((j + e) % pool_));
      }
      p_blob_ = upload(tb.data(), tb.size() * sizeof(uint8_t*));
    } else {
      experts_ = rand_bf16(expert_elems_ * pool_);
    }
    std::vector<const bf16*> tg, tu, td;
    for (int j = 0; j < pool_ && !quant_; ++j) {
      for (int e = 0; e < E_; ++e) {
        const bf16* base = experts_.as<bf16>() + expert_elems_ * ((j + e) % pool_);
        tg.push_back(base);
        tu.push_back(base + static_cast<size_t>(dff_) * H_);
        td.push_back(base + static_cast<size_t>(2) * dff_ * H_);
      }
    }
    if (!quant_) {
      p_gate_ = upload(tg.data(), tg.size() * sizeof(bf16*));
      p_up_ = upload(tu.data(), tu.size() * sizeof(bf16*));
      p_down_ = upload(td.data(), td.size() * sizeof(bf16*));
    }
    host_experts_ = std::make_unique<Pinned>(expert_bytes() * 16);
    if (quant_) {
      for (int j = 0; j < 16; ++j) std::memcpy(static_cast<char*>(host_experts_->p) + expert_bytes() * j, blob_.data(), expert_bytes());
    } else {
      for (size_t off = 0; off < expert_bytes() * 16; off += chunk_.size() * 2) {
        std::memcpy(static_cast<char*>(host_experts_->p) + off, chunk_.data(), std::min(chunk_.size() * 2, expert_bytes() * 16 - off));
      }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
  }

  ~CudaCalibratorImpl() override {
    stop_copy_load();
    cudaDeviceSynchronize();
    if (cublas_) cublasDestroy(cublas_);
    for (cudaStream_t s : {stream_, copy_[0], copy_[1]}) {
      if (s) cudaStreamDestroy(s);
    }
  }

  DeviceInfo device() const override {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    DeviceInfo d;
    d.name = p.name;
    d.total_gib = static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
    d.sm_count = p.multiProcessorCount;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.async_engines = p.asyncEngineCount;
    CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
    CUDA_CHECK(cudaDriverGetVersion(&d.driver_version));
    return d;
  }

  std::vector<double> copy_ms(int experts, bool one_copy, int streams, int repeats) override {
    if (experts < 1 || experts > 16 || (streams != 1 && streams != 2) || repeats < 1) {
      throw Error("calibrate: copy_ms needs 1..16 experts, 1 or 2 streams, repeats >= 1");
    }
    const size_t B = expert_bytes();
    const char* src = static_cast<const char*>(host_experts_->p);
    char* dst = experts_.as<char>();
    Event start, end, joined;
    auto once = [&]() {
      CUDA_CHECK(cudaEventRecord(start.e, copy_[0]));
      if (streams == 2) CUDA_CHECK(cudaStreamWaitEvent(copy_[1], start.e, 0));
      if (one_copy) {
        // One copy per stream: the whole group, or its two halves.
        const size_t total = B * experts;
        const size_t first = streams == 2 ? (total / 2 + 255) & ~size_t(255) : total;
        CUDA_CHECK(cudaMemcpyAsync(dst, src, first, cudaMemcpyHostToDevice, copy_[0]));
        if (streams == 2) CUDA_CHECK(cudaMemcpyAsync(dst + first, src + first, total - first, cudaMemcpyHostToDevice, copy_[1]));
      } else {
        for (int i = 0; i < experts; ++i) {
          CUDA_CHECK(cudaMemcpyAsync(dst + B * i, src + B * i, B, cudaMemcpyHostToDevice, copy_[i % streams]));
        }
      }
      if (streams == 2) {
        CUDA_CHECK(cudaEventRecord(joined.e, copy_[1]));
        CUDA_CHECK(cudaStreamWaitEvent(copy_[0], joined.e, 0));
      }
      CUDA_CHECK(cudaEventRecord(end.e, copy_[0]));
      CUDA_CHECK(cudaEventSynchronize(end.e));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start.e, end.e));
      return static_cast<double>(ms);
    };
    once();
    once();
    std::vector<double> out;
    for (int r = 0; r < repeats; ++r) out.push_back(once());
    return out;
  }

  double copy_load(bool on) override {
    if (on) {
      if (load_thread_.joinable()) return 0.0;
      load_stop_.store(false);
      load_error_.clear();
      load_rounds_ = 0;
      load_ms_ = 0.0;
      load_thread_ = std::thread([this] {
        try {
          CUDA_CHECK(cudaSetDevice(0));
          const size_t B = expert_bytes();
          const char* src = static_cast<const char*>(host_experts_->p);
          char* dst = experts_.as<char>();
          // kLoadRound = 8 experts a round (about 2.5 ms for bf16 at 55 GB/s): the gap of one synchronisation per round
          // leaves the engine idle well under 1% of the time.
          while (!load_stop_.load(std::memory_order_relaxed)) {
            const auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < kLoadRound; ++i) CUDA_CHECK(cudaMemcpyAsync(dst + B * i, src + B * i, B, cudaMemcpyHostToDevice, copy_[1]));
            CUDA_CHECK(cudaStreamSynchronize(copy_[1]));
            load_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            ++load_rounds_;
          }
        } catch (const std::exception& e) {
          load_error_ = e.what();
        }
      });
      return 0.0;
    }
    stop_copy_load();
    if (!load_error_.empty()) {
      const std::string e = load_error_;
      load_error_.clear();
      throw Error("calibrate: the copy load failed: " + e);
    }
    return load_rounds_ > 0 ? load_ms_ / (static_cast<double>(load_rounds_) * kLoadRound) : 0.0;
  }

  size_t expert_bytes() const override { return quant_ ? layout_.bytes : expert_elems_ * sizeof(bf16); }
  quant::ExpertDType expert_dtype() const override { return layout_.dtype; }

  std::vector<double> expert_ms(const std::string& kernel, int tokens, int repeats) override {
    const bool decode = kernel == "decode";
    if (!decode && kernel != "grouped") throw Error("calibrate: expert kernel must be decode or grouped, not " + kernel);
    if (quant_) return expert_q_ms(decode, tokens, repeats);
    if (decode && !cuda::expert_ffn_decode_supported(H_, dff_, E_)) {
      throw Error("calibrate: expert_ffn_decode does not support this model's shape");
    }
    if (tokens < 1 || repeats < 1) throw Error("calibrate: expert_ms needs tokens >= 1 and repeats >= 1");
    Dev x = rand_bf16(static_cast<size_t>(tokens) * H_);
    Dev y(sizeof(float) * tokens * H_);
    Dev ids = upload(std::vector<int32_t>(static_cast<size_t>(tokens), 0));
    Dev w = upload_f32(std::vector<float>(static_cast<size_t>(tokens), 1.f));
    const size_t ws_bytes = decode ? cuda::expert_ffn_decode_workspace_bytes(tokens, 1, E_, H_, dff_)
                                   : cuda::expert_ffn_workspace_bytes(tokens, 1, E_, H_, dff_);
    Dev ws(ws_bytes);
    int next = 0;
    auto launch = [&]() {
      const size_t t = static_cast<size_t>(next) * E_;
      next = (next + 1) % pool_;
      const bf16* const* g = p_gate_.as<const bf16*>() + t;
      const bf16* const* u = p_up_.as<const bf16*>() + t;
      const bf16* const* d = p_down_.as<const bf16*>() + t;
      if (decode) {
        cuda::expert_ffn_decode(x.as<bf16>(), tokens, H_, ids.as<int32_t>(), w.as<float>(), 1, E_, H_, dff_, g, u, d,
                                y.as<float>(), H_, false, ws.p, ws_bytes, stream_);
      } else {
        cuda::expert_ffn_grouped(x.as<bf16>(), tokens, H_, ids.as<int32_t>(), w.as<float>(), 1, E_, H_, dff_, g, u, d,
                                 y.as<float>(), H_, false, ws.p, ws_bytes, stream_);
      }
    };
    return time_runs(launch, repeats);
  }

  // The quantized kernels the backend runs for this dtype (cuda_offload_layer.cpp): decode up to 32
  // rows, grouped above; per-entry outputs with k = 1.
  std::vector<double> expert_q_ms(bool decode, int tokens, int repeats) {
    if (tokens < 1 || repeats < 1) throw Error("calibrate: expert_ms needs tokens >= 1 and repeats >= 1");
    if (!cuda::expert_ffn_q_supported(qlayout_, E_)) {
      throw Error(std::string("calibrate: the ") + quant::expert_dtype_name(layout_.dtype) + " expert kernels do not support this model's shape");
    }
    Dev x = rand_bf16(static_cast<size_t>(tokens) * H_);
    Dev y(sizeof(float) * tokens * H_);
    Dev ids = upload(std::vector<int32_t>(static_cast<size_t>(tokens), 0));
    Dev w = upload_f32(std::vector<float>(static_cast<size_t>(tokens), 1.f));
    const size_t ws_bytes = decode ? cuda::expert_ffn_decode_q_workspace_bytes(tokens, 1, E_, qlayout_)
                                   : cuda::expert_ffn_grouped_q_workspace_bytes(tokens, 1, E_, qlayout_);
    Dev ws(ws_bytes);
    int next = 0;
    auto launch = [&]() {
      const uint8_t* const* b = p_blob_.as<const uint8_t*>() + static_cast<size_t>(next) * E_;
      next = (next + 1) % pool_;
      if (decode) {
        cuda::expert_ffn_decode_q_entries(x.as<bf16>(), tokens, H_, ids.as<int32_t>(), w.as<float>(), 1, E_, b, qlayout_, ws.p, ws_bytes,
                                          stream_, y.as<float>());
      } else {
        cuda::expert_ffn_grouped_q_entries(x.as<bf16>(), tokens, H_, ids.as<int32_t>(), w.as<float>(), 1, E_, b, qlayout_, ws.p, ws_bytes,
                                           stream_, y.as<float>());
      }
    };
    return time_runs(launch, repeats);
  }

  // One launch of the decode expert kernel over `experts` distinct experts with `tokens` tokens each, as
  // the runtime computes a layer's resident (or loaded) experts in one launch (cuda_offload_layer.cpp:
  // expert_ffn_decode_entries / expert_ffn_decode_q_entries with per-entry outputs). Laid out as `tokens`
  // rows each routed to all `experts` (k = experts), so every expert gets every row; the runtime's launch
  // has k = top-k and masked entries instead, the same (expert, token) work. Consecutive launches read
  // disjoint pool experts (the table advances by `experts`), cold in L2 while the pool exceeds it.
  std::vector<double> launch_ms(int experts, int tokens, int repeats) override {
    if (experts < 1 || experts > E_ || experts > pool_) {
      throw Error("calibrate: launch_ms needs 1.." + std::to_string(std::min(E_, pool_)) + " experts (the model's routed experts and the pool), not " +
                  std::to_string(experts));
    }
    if (tokens < 1 || tokens > kGemvMaxRows || repeats < 1) {
      throw Error("calibrate: launch_ms needs 1.." + std::to_string(kGemvMaxRows) + " tokens per expert (the decode kernel's rows) and repeats >= 1");
    }
    if (quant_ ? !cuda::expert_ffn_q_supported(qlayout_, E_) : !cuda::expert_ffn_decode_supported(H_, dff_, E_)) {
      throw Error("calibrate: the decode expert kernel does not support this model's shape");
    }
    const int rows = tokens, k = experts;
    const size_t entries = static_cast<size_t>(rows) * k;
    std::vector<int32_t> ids(entries);
    for (size_t i = 0; i < entries; ++i) ids[i] = static_cast<int32_t>(i % static_cast<size_t>(k));
    Dev x = rand_bf16(static_cast<size_t>(rows) * H_);
    Dev y(sizeof(float) * rows * H_);
    Dev out(sizeof(float) * entries * H_);
    Dev id = upload(ids);
    Dev w = upload_f32(std::vector<float>(entries, 1.f));
    const size_t ws_bytes = quant_ ? cuda::expert_ffn_decode_q_workspace_bytes(rows, k, E_, qlayout_)
                                   : cuda::expert_ffn_decode_workspace_bytes(rows, k, E_, H_, dff_);
    Dev ws(ws_bytes);
    int next = 0;
    auto launch = [&]() {
      const size_t t = static_cast<size_t>(next) * E_;
      next = (next + experts) % pool_;
      if (quant_) {
        cuda::expert_ffn_decode_q_entries(x.as<bf16>(), rows, H_, id.as<int32_t>(), w.as<float>(), k, E_, p_blob_.as<const uint8_t*>() + t, qlayout_,
                                          ws.p, ws_bytes, stream_, out.as<float>());
      } else {
        cuda::expert_ffn_decode_entries(x.as<bf16>(), rows, H_, id.as<int32_t>(), w.as<float>(), k, E_, H_, dff_, p_gate_.as<const bf16*>() + t,
                                        p_up_.as<const bf16*>() + t, p_down_.as<const bf16*>() + t, y.as<float>(), H_, false, ws.p, ws_bytes,
                                        stream_, out.as<float>());
      }
    };
    return time_runs(launch, repeats);
  }

  std::vector<double> part_ms(const std::string& part, int batch, int context, bool graph, int repeats) override {
    const bool moe = part == "moe", dense = part == "dense", head = part == "head";
    if (!moe && !dense && !head) throw Error("calibrate: part must be moe, dense or head, not " + part);
    if (batch < 1 || context < 1 || repeats < 1) throw Error("calibrate: part_ms needs batch, context, repeats >= 1");
    if (dense && c_.intermediate_size <= 0) throw Error("calibrate: the model has no dense layer");
    if (!head && (c_.kv_lora_rank != 512 || c_.qk_nope_head_dim != 128 || c_.qk_rope_head_dim != 64 ||
                  c_.v_head_dim != 128 || heads_ % 16 != 0)) {
      throw Error("calibrate: the decode attention kernel needs DeepSeek-V2's MLA shape (kv_lora 512, nope 128, rope 64, "
                  "v 128, heads a multiple of 16)");
    }
    const int T = batch;
    Step s = decode_step(T, context, dense ? c_.intermediate_size : 0, head, head ? 0 : dense ? 1 : static_cast<int>(moe_.size()));

    int layer = 0;
    auto launch = [&]() {
      if (head) {
        run_head(s, T);
        return;
      }
      const LayerW& L = dense ? dense_ : moe_[static_cast<size_t>(layer)];
      bf16* cache = s.caches[static_cast<size_t>(dense ? 0 : layer)].as<bf16>();
      if (!dense) layer = (layer + 1) % static_cast<int>(moe_.size());
      run_attention(s, L, cache, T, context);
      cuda::rmsnorm_f32_to_bf16(s.h.as<float>(), H_, post_norm_.as<float>(), eps_, T, H_, s.x.as<bf16>(), H_, stream_);
      if (dense) {
        run_mlp(s, L.dense_gu.as<bf16>(), L.dense_down.as<bf16>(), c_.intermediate_size, T);
      } else {
        cuda::linear_bf16_out_f32(cublas_, s.x.as<bf16>(), T, H_, H_, L.router.as<bf16>(), E_, s.router.as<float>(), E_,
                                  false, stream_);
        cuda::router_topk(s.router.as<float>(), T, E_, k_, c_.norm_topk_prob, static_cast<float>(c_.routed_scaling_factor),
                          s.ids.as<int32_t>(), s.rw.as<float>(), stream_);
        if (sff_ > 0) run_mlp(s, L.shared_gu.as<bf16>(), L.shared_down.as<bf16>(), sff_, T);
      }
    };
    // A graph holds one pass over the layer copies (the order a real model runs its layers in).
    const int per_graph = head || dense ? 1 : static_cast<int>(moe_.size());
    if (!graph) return time_runs(launch, repeats);
    // Eager runs first: cuBLAS picks and loads its kernels outside the capture (as the backend does).
    for (int i = 0; i < 2 * per_graph; ++i) launch();
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    cudaGraphExec_t exec = capture_graph(stream_, per_graph, launch);
    auto replay = [&]() { CUDA_CHECK(cudaGraphLaunch(exec, stream_)); };
    std::vector<double> out;
    try {
      out = time_runs(replay, repeats);
    } catch (...) {
      cudaGraphExecDestroy(exec);
      throw;
    }
    cudaGraphExecDestroy(exec);
    for (double& v : out) v /= per_graph;  // per layer
    return out;
  }

  // A MoE layer step as the offloaded runtime runs it (cuda_offload_layer.cpp, all experts resident):
  // attention, router + top-k, the routing (ids, weights) to pinned host memory, then - eager - a stream
  // synchronisation, the host's copy of the routing into the upload buffer and the upload, the shared
  // experts, one launch of the decode expert kernel over every routed entry, the combine of the k outputs.
  // Eager: launched eagerly with that synchronisation every layer, host wall clock over a run of layers
  // (cycling the layer copies), per layer. Graph: the same sequence without the host's part, captured once
  // over the layer copies as a CUDA graph and replayed, CUDA events, per layer (the GPU work alone).
  // Their difference is what the runtime's way of launching costs beyond the GPU work
  // (gpu.eagerLayerOverheadMs); the runtime's own host work (cache, placement) is not in it (host.layerMs).
  // The upload always carries experts 0..k-1 (the eager modes put them back over the router's ids after
  // the host's copy): in a graph replay no host code writes the buffer the upload reads, and with the router's
  // ids the eager run's expert kernel would read ~E(1 - (1 - k/E)^T) experts' weights against the graph's
  // k, a difference of GPU work, not of launching (at 16 rows, 0.12 of an H100's 0.30 ms).
  // EagerJoin adds the CPU experts' join (join_cpu_experts) after the expert launch: the difference from
  // Eager is what a CPU join costs a layer whose GPU work has drained (gpu.cpuJoinLayerOverheadMs).
  std::vector<double> layer_step_ms(int batch, int context, LayerStepMode mode, int repeats) override {
    if (batch < 1 || batch > kGemvMaxRows || context < 1 || repeats < 1) {
      throw Error("calibrate: layer_step_ms needs 1.." + std::to_string(kGemvMaxRows) + " rows (the decode expert kernel's), context >= 1, repeats >= 1");
    }
    if (quant_ ? !cuda::expert_ffn_q_supported(qlayout_, E_) : !cuda::expert_ffn_decode_supported(H_, dff_, E_)) {
      throw Error("calibrate: the decode expert kernel does not support this model's shape");
    }
    if (c_.kv_lora_rank != 512 || c_.qk_nope_head_dim != 128 || c_.qk_rope_head_dim != 64 || c_.v_head_dim != 128 || heads_ % 16 != 0) {
      throw Error("calibrate: the decode attention kernel needs DeepSeek-V2's MLA shape (kv_lora 512, nope 128, rope 64, v 128, heads a multiple of 16)");
    }
    const int T = batch;
    const int copies = static_cast<int>(moe_.size());
    Step s = decode_step(T, context, 0, false, copies);
    const size_t n = static_cast<size_t>(T) * k_;
    // Routing down (as fetch_plan) and the upload (as moe_offloaded's offload inputs: ids, then weights).
    Pinned down(n * (sizeof(int32_t) + sizeof(float))), up(n * (sizeof(int32_t) + sizeof(float)));
    {
      int32_t* ids = static_cast<int32_t*>(up.p);  // valid ids before the first routing arrives (graph mode)
      for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(i % static_cast<size_t>(k_));
      float* w = reinterpret_cast<float*>(ids + n);
      for (size_t i = 0; i < n; ++i) w[i] = 1.f / static_cast<float>(k_);
    }
    Dev inputs(n * (sizeof(int32_t) + sizeof(float)));
    const int32_t* ids_d = inputs.as<int32_t>();
    const float* rw_d = reinterpret_cast<const float*>(inputs.as<int32_t>() + n);
    Dev out(sizeof(float) * n * H_);
    // EagerJoin: one CPU output row per token, for entry t * k (its first), as join_cpu_experts uploads them.
    const bool eager = mode != LayerStepMode::Graph, join = mode == LayerStepMode::EagerJoin;
    const size_t join_rows = join ? static_cast<size_t>(T) : 0;
    Pinned join_h(join_rows * (sizeof(float) * H_ + sizeof(int32_t)));
    Dev join_d(join_rows * (sizeof(float) * H_ + sizeof(int32_t)));
    float* join_out_h = static_cast<float*>(join_h.p);
    int32_t* join_ent_h = reinterpret_cast<int32_t*>(join_out_h + join_rows * H_);
    std::memset(join_h.p, 0, join_rows * sizeof(float) * H_);
    for (size_t t = 0; t < join_rows; ++t) join_ent_h[t] = static_cast<int32_t>(t * static_cast<size_t>(k_));
    float* join_out_d = join_d.as<float>();
    int32_t* join_ent_d = reinterpret_cast<int32_t*>(join_out_d + join_rows * H_);
    const size_t ws_bytes = quant_ ? cuda::expert_ffn_decode_q_workspace_bytes(T, k_, E_, qlayout_)
                                   : cuda::expert_ffn_decode_workspace_bytes(T, k_, E_, H_, dff_);
    Dev ws(ws_bytes);
    int layer = 0;
    auto step = [&](bool host) {
      const LayerW& L = moe_[static_cast<size_t>(layer)];
      bf16* cache = s.caches[static_cast<size_t>(layer)].as<bf16>();
      // The layer's experts: the pool experts from this layer copy's own offset on (other layers, other weights).
      const size_t t = static_cast<size_t>(layer % pool_) * E_;
      layer = (layer + 1) % copies;
      run_attention(s, L, cache, T, context);
      cuda::rmsnorm_f32_to_bf16(s.h.as<float>(), H_, post_norm_.as<float>(), eps_, T, H_, s.x.as<bf16>(), H_, stream_);
      cuda::linear_bf16_out_f32(cublas_, s.x.as<bf16>(), T, H_, H_, L.router.as<bf16>(), E_, s.router.as<float>(), E_, false, stream_);
      cuda::router_topk(s.router.as<float>(), T, E_, k_, c_.norm_topk_prob, static_cast<float>(c_.routed_scaling_factor), s.ids.as<int32_t>(),
                        s.rw.as<float>(), stream_);
      int32_t* down_ids = static_cast<int32_t*>(down.p);
      CUDA_CHECK(cudaMemcpyAsync(down_ids, s.ids.p, n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK(cudaMemcpyAsync(down_ids + n, s.rw.p, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
      if (host) {
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        std::memcpy(up.p, down.p, n * (sizeof(int32_t) + sizeof(float)));
        int32_t* up_ids = static_cast<int32_t*>(up.p);  // the graph's experts (see above)
        for (size_t i = 0; i < n; ++i) up_ids[i] = static_cast<int32_t>(i % static_cast<size_t>(k_));
      }
      CUDA_CHECK(cudaMemcpyAsync(inputs.p, up.p, n * (sizeof(int32_t) + sizeof(float)), cudaMemcpyHostToDevice, stream_));
      if (sff_ > 0) run_mlp(s, L.shared_gu.as<bf16>(), L.shared_down.as<bf16>(), sff_, T);
      if (quant_) {
        cuda::expert_ffn_decode_q_entries(s.x.as<bf16>(), T, H_, ids_d, rw_d, k_, E_, p_blob_.as<const uint8_t*>() + t, qlayout_, ws.p, ws_bytes,
                                          stream_, out.as<float>());
      } else {
        cuda::expert_ffn_decode_entries(s.x.as<bf16>(), T, H_, ids_d, rw_d, k_, E_, H_, dff_, p_gate_.as<const bf16*>() + t,
                                        p_up_.as<const bf16*>() + t, p_down_.as<const bf16*>() + t, s.h.as<float>(), H_, false, ws.p, ws_bytes,
                                        stream_, out.as<float>());
      }
      if (host && join) {
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        CUDA_CHECK(cudaMemcpyAsync(join_out_d, join_out_h, join_rows * H_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaMemcpyAsync(join_ent_d, join_ent_h, join_rows * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
        cuda::scatter_entry_rows(join_out_d, join_ent_d, static_cast<int>(join_rows), H_, out.as<float>(), stream_);
      }
      cuda::combine_expert_outputs(out.as<float>(), ids_d, T, k_, H_, s.h.as<float>(), H_, true, stream_);
    };
    if (eager) {
      // Layers per sample: whole passes over the layer copies spanning about kTargetSampleMs.
      auto timed = [&](int layers) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < layers; ++i) step(true);
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / layers;
      };
      timed(3 * copies);  // warm-up: cuBLAS's kernels loaded, caches touched
      const double one = std::max(timed(copies), 1e-3);
      const int passes = static_cast<int>(std::clamp(std::ceil(kTargetSampleMs / (one * copies)), 1.0, 200.0));
      std::vector<double> res;
      for (int r = 0; r < repeats; ++r) res.push_back(timed(passes * copies));
      return res;
    }
    // The GPU work alone: one pass over the layer copies as a graph (eager runs first, as part_ms).
    for (int i = 0; i < 2 * copies; ++i) step(false);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    cudaGraphExec_t exec = capture_graph(stream_, copies, [&]() { step(false); });
    std::vector<double> res;
    try {
      res = time_runs([&]() { CUDA_CHECK(cudaGraphLaunch(exec, stream_)); }, repeats);
    } catch (...) {
      cudaGraphExecDestroy(exec);
      throw;
    }
    cudaGraphExecDestroy(exec);
    for (double& v : res) v /= copies;
    return res;
  }

  std::vector<double> activation_ms(int tokens, int repeats) override {
    if (tokens < 1 || repeats < 1) throw Error("calibrate: activation_ms needs tokens >= 1 and repeats >= 1");
    Dev x = rand_bf16(static_cast<size_t>(tokens) * H_);
    Dev y(sizeof(float) * tokens * H_);
    Pinned hx(sizeof(bf16) * tokens * H_), hy(sizeof(float) * tokens * H_);
    std::memset(hy.p, 0, sizeof(float) * tokens * H_);
    // Host wall clock: the CPU path pays the host synchronisation too, not only the copy time.
    auto once = [&]() {
      const auto t0 = std::chrono::steady_clock::now();
      CUDA_CHECK(cudaMemcpyAsync(hx.p, x.p, sizeof(bf16) * tokens * H_, cudaMemcpyDeviceToHost, copy_[0]));
      CUDA_CHECK(cudaStreamSynchronize(copy_[0]));
      CUDA_CHECK(cudaMemcpyAsync(y.p, hy.p, sizeof(float) * tokens * H_, cudaMemcpyHostToDevice, copy_[0]));
      CUDA_CHECK(cudaStreamSynchronize(copy_[0]));
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    for (int i = 0; i < 3; ++i) once();
    std::vector<double> out;
    for (int r = 0; r < repeats; ++r) out.push_back(once());
    return out;
  }

 private:
  struct Step {
    Dev h, x, qkv, attn, router, ids, rw, gu, hbuf, pos, seq_len, cache_row, cache_start, attn_ws;
    size_t attn_ws_bytes = 0;
    Dev logits, temp, top_p, rng, token;
    std::vector<Dev> caches;
  };

  // The buffers of one decode step of T rows at `context` (part_ms, layer_step_ms): activations, routing,
  // positions, attention workspace, `cache_copies` KV caches of random rows; with head, the sampling inputs.
  // dense_ff: the dense MLP's d_ff when the step runs the dense layer (0 otherwise).
  Step decode_step(int T, int context, int dense_ff, bool head, int cache_copies) {
    const int ff = std::max(sff_, dense_ff);
    Step s;
    s.h = rand_f32_like(static_cast<size_t>(T) * H_);
    s.x = Dev(sizeof(bf16) * T * H_);
    s.qkv = Dev(sizeof(bf16) * T * QW_);
    s.attn = Dev(sizeof(bf16) * T * heads_ * vd_);
    s.router = Dev(sizeof(float) * T * std::max(E_, 1));
    s.ids = Dev(sizeof(int32_t) * T * std::max(k_, 1));
    s.rw = Dev(sizeof(float) * T * std::max(k_, 1));
    s.gu = Dev(sizeof(bf16) * T * 2 * std::max(ff, 1));
    s.hbuf = Dev(sizeof(bf16) * T * std::max(ff, 1));
    // Every row is a sequence at position context - 1 whose earlier context - 1 tokens are cached;
    // its own row is appended at that position, so it attends to `context` rows.
    std::vector<int32_t> pos(static_cast<size_t>(T), context - 1), len(static_cast<size_t>(T), context);
    std::vector<int64_t> row(static_cast<size_t>(T)), start(static_cast<size_t>(T));
    for (int b = 0; b < T; ++b) {
      start[static_cast<size_t>(b)] = static_cast<int64_t>(b) * context;
      row[static_cast<size_t>(b)] = start[static_cast<size_t>(b)] + context - 1;
    }
    s.pos = upload(pos);
    s.seq_len = upload(len);
    s.cache_row = upload(row);
    s.cache_start = upload(start);
    const int chunk = std::min(T, kAttnChunk);
    s.attn_ws_bytes = cuda::mla_decode_cublas_workspace_bytes(chunk, heads_, context);
    s.attn_ws = Dev(s.attn_ws_bytes);
    if (head) {
      s.logits = Dev(sizeof(float) * T * c_.vocab_size);
      s.temp = upload_f32(std::vector<float>(static_cast<size_t>(T), 0.f));  // greedy
      s.top_p = upload_f32(std::vector<float>(static_cast<size_t>(T), 1.f));
      s.rng = upload(std::vector<uint64_t>(static_cast<size_t>(T), 1));
      s.token = Dev(sizeof(int32_t) * T);
    }
    // One KV cache per layer copy (random rows: attention reads them all whatever they hold).
    const size_t cache_elems = static_cast<size_t>(T) * context * width_;
    for (int i = 0; i < cache_copies; ++i) s.caches.push_back(rand_bf16(cache_elems));
    return s;
  }

  // One random expert (the bf16 values every weight buffer tiles) quantized into blob_.
  void quantized_blob() {
    std::vector<uint16_t> w(expert_elems_);
    for (size_t i = 0; i < w.size(); ++i) w[i] = chunk_[i % chunk_.size()];
    const size_t per = static_cast<size_t>(dff_) * H_;
    const Matrix gate{w.data(), DType::BF16, dff_, H_}, up{w.data() + per, DType::BF16, dff_, H_};
    const Matrix down{w.data() + 2 * per, DType::BF16, H_, dff_};
    blob_.resize(layout_.bytes);
    quant::quantize_expert(layout_, gate, up, down, blob_.data());
  }

  void attention_weights(LayerW& L) {
    L.qkv_a = rand_bf16(static_cast<size_t>(QW_) * H_);
    L.kv_b = rand_bf16(static_cast<size_t>(heads_) * (c_.qk_nope_head_dim + vd_) * c_.kv_lora_rank);
    L.o_proj = rand_bf16(static_cast<size_t>(H_) * heads_ * vd_);
  }

  // cuda_layers.cpp's attention() for decode rows (absorbed MLA on the compact cache).
  void run_attention(Step& s, const LayerW& L, bf16* cache, int T, int context) {
    const int nope = c_.qk_nope_head_dim, rope = c_.qk_rope_head_dim, lora = c_.kv_lora_rank;
    const float* inv_freq = inv_freq_.as<float>();
    cuda::rmsnorm_f32_to_bf16(s.h.as<float>(), H_, input_norm_.as<float>(), eps_, T, H_, s.x.as<bf16>(), H_, stream_);
    cuda::linear_bf16_out_bf16(cublas_, s.x.as<bf16>(), T, H_, H_, L.qkv_a.as<bf16>(), QW_, s.qkv.as<bf16>(), QW_, stream_);
    cuda::rope_yarn_inplace(s.qkv.as<bf16>(), T, QW_, heads_, QK_, nope, rope, s.pos.as<int32_t>(), inv_freq,
                            rope_.attention_factor, stream_);
    cuda::mla_cache_append(s.qkv.as<bf16>() + q_out_, T, QW_, kv_a_norm_.as<float>(), eps_, lora, rope,
                           s.pos.as<int32_t>(), inv_freq, rope_.attention_factor, s.cache_row.as<int64_t>(), cache, stream_);
    for (int r0 = 0; r0 < T; r0 += kAttnChunk) {
      const int n = std::min(kAttnChunk, T - r0);
      cuda::mla_attention_decode_cublas(cublas_, s.qkv.as<bf16>() + static_cast<size_t>(r0) * QW_, QW_, L.kv_b.as<bf16>(),
                                        cache, width_, s.cache_start.as<int64_t>() + r0, s.seq_len.as<int32_t>() + r0, n,
                                        heads_, context, scale_, s.attn.as<bf16>() + static_cast<size_t>(r0) * heads_ * vd_,
                                        heads_ * vd_, s.attn_ws.p, s.attn_ws_bytes, stream_);
    }
    cuda::linear_bf16_out_f32(cublas_, s.attn.as<bf16>(), T, heads_ * vd_, heads_ * vd_, L.o_proj.as<bf16>(), H_,
                              s.h.as<float>(), H_, true, stream_);
  }

  // cuda_layers.cpp's mlp(): residual += down(silu(gate x) * up x).
  void run_mlp(Step& s, const bf16* gu_w, const bf16* down_w, int d_ff, int T) {
    cuda::linear_bf16_out_bf16(cublas_, s.x.as<bf16>(), T, H_, H_, gu_w, 2 * d_ff, s.gu.as<bf16>(), 2 * d_ff, stream_);
    cuda::silu_mul(s.gu.as<bf16>(), T, d_ff, 2 * d_ff, s.hbuf.as<bf16>(), d_ff, stream_);
    cuda::linear_bf16_out_f32(cublas_, s.hbuf.as<bf16>(), T, d_ff, d_ff, down_w, H_, s.h.as<float>(), H_, true, stream_);
  }

  // run_model()'s tail: final norm, lm_head (fp32 logits), then greedy sampling of every row.
  void run_head(Step& s, int T) {
    cuda::rmsnorm_f32_to_bf16(s.h.as<float>(), H_, final_norm_.as<float>(), eps_, T, H_, s.x.as<bf16>(), H_, stream_);
    cuda::linear_bf16_out_f32(cublas_, s.x.as<bf16>(), T, H_, H_, lm_head_.as<bf16>(), c_.vocab_size, s.logits.as<float>(),
                              c_.vocab_size, false, stream_);
    cuda::sample_tokens(s.logits.as<float>(), T, c_.vocab_size, s.temp.as<float>(), s.top_p.as<float>(), s.rng.as<uint64_t>(),
                        s.token.as<int32_t>(), stream_);
  }

  // Warm-up, then `repeats` samples; each sample is the event time of `inner` back-to-back runs
  // divided by `inner`, with `inner` chosen so that a sample spans about kTargetSampleMs.
  template <typename F>
  std::vector<double> time_runs(F&& run, int repeats) {
    Event a, b;
    for (int i = 0; i < 3; ++i) run();
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    auto timed = [&](int inner) {
      CUDA_CHECK(cudaEventRecord(a.e, stream_));
      for (int i = 0; i < inner; ++i) run();
      CUDA_CHECK(cudaEventRecord(b.e, stream_));
      CUDA_CHECK(cudaEventSynchronize(b.e));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, a.e, b.e));
      return static_cast<double>(ms);
    };
    const double one = std::max(timed(1), 1e-3);
    const int inner = static_cast<int>(std::clamp(std::ceil(kTargetSampleMs / one), 1.0, 200.0));
    std::vector<double> out;
    for (int r = 0; r < repeats; ++r) out.push_back(timed(inner) / inner);
    return out;
  }

  Dev rand_bf16(size_t n) {
    Dev d(n * sizeof(bf16));
    const size_t step = chunk_.size();
    for (size_t off = 0; off < n; off += step) {
      CUDA_CHECK(cudaMemcpy(d.as<bf16>() + off, chunk_.data(), std::min(step, n - off) * sizeof(bf16), cudaMemcpyHostToDevice));
    }
    return d;
  }
  Dev rand_f32_like(size_t n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = bf16_to_f32(chunk_[i % chunk_.size()]) * 50.f;
    return upload_f32(v);
  }
  Dev upload(const void* data, size_t bytes) {
    Dev d(bytes);
    CUDA_CHECK(cudaMemcpy(d.p, data, bytes, cudaMemcpyHostToDevice));
    return d;
  }
  template <typename T>
  Dev upload(const std::vector<T>& v) {
    return upload(v.data(), v.size() * sizeof(T));
  }
  Dev upload_f32(const std::vector<float>& v) { return upload(v); }

  ModelConfig c_;
  int H_ = 0, heads_ = 0, QK_ = 0, q_out_ = 0, QW_ = 0, width_ = 0, vd_ = 0, dff_ = 0, sff_ = 0, E_ = 0, k_ = 0, pool_ = 0;
  size_t expert_elems_ = 0;
  quant::ExpertLayout layout_;
  bool quant_ = false;
  cuda::QuantLayout qlayout_{};
  std::vector<uint8_t> blob_;  // quantized: the one blob every pool expert copies
  float eps_ = 1e-6f, scale_ = 1.f;
  RopeTable rope_;
  cudaStream_t stream_ = nullptr;
  cudaStream_t copy_[2] = {nullptr, nullptr};
  cublasHandle_t cublas_ = nullptr;
  Dev cublas_ws_;
  std::vector<uint16_t> chunk_;
  Dev inv_freq_, input_norm_, post_norm_, kv_a_norm_, final_norm_, lm_head_;
  std::vector<LayerW> moe_;
  LayerW dense_;
  Dev experts_, p_gate_, p_up_, p_down_, p_blob_;
  std::unique_ptr<Pinned> host_experts_;
  // copy_load's thread (it only reads host_experts_ and writes the first 8 experts_ slots on copy_[1])
  std::thread load_thread_;
  std::atomic<bool> load_stop_{false};
  std::string load_error_;
  static constexpr int kLoadRound = 8;  // experts per round (the first 8 slots)
  // the load's rounds and their wall time: written by its thread, read after the join
  uint64_t load_rounds_ = 0;
  double load_ms_ = 0.0;

  void stop_copy_load() noexcept {
    if (!load_thread_.joinable()) return;
    load_stop_.store(true);
    load_thread_.join();
  }
};

}  // namespace

bool cuda_built() { return true; }

std::unique_ptr<CudaCalibrator> make_cuda_calibrator(const ModelConfig& config, int expert_pool, int layer_copies, quant::ExpertDType dtype,
                                                     int group) {
  try {
    return std::make_unique<CudaCalibratorImpl>(config, expert_pool, layer_copies, dtype, group);
  } catch (const cuda::CudaError& e) {
    throw Error(std::string("calibrate: CUDA setup failed: ") + e.what());
  }
}

}  // namespace moe::calibrate
