// CPU side of `calibrate`: one routed expert through moe::mlp_forward (the CPU expert path), alone or
// with several experts running at once, on a pool of random bf16 experts cycled so that weights come
// from DRAM (a pool larger than the last-level cache), as a missed expert's do.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "calibrate.h"
#include "moe/cpu_features.h"
#include "moe/error.h"
#include "moe/kernels.h"
#include "moe/quant/quantize.h"
#include "moe/thread_pool.h"
#include "moe/weights.h"
#include "moe/quant/expert_kernels.h"

namespace moe::calibrate {

namespace {

LinearIsa auto_isa() { return isa_supported(LinearIsa::Avx512Bf16) ? LinearIsa::Avx512Bf16 : best_exact_isa(); }

LinearIsa parse_isa(const std::string& name) {
  if (name == "auto") return auto_isa();
  for (LinearIsa isa : {LinearIsa::Scalar, LinearIsa::Avx2, LinearIsa::Avx512, LinearIsa::Avx512Bf16}) {
    if (name == linear_isa_name(isa)) {
      if (!isa_supported(isa)) throw Error("calibrate: kernel " + name + " is not supported by this CPU");
      return isa;
    }
  }
  throw Error("calibrate: unknown CPU kernel '" + name + "' (auto, gpu-order, scalar, avx2, avx512, avx512bf16)");
}

uint64_t lcg(uint64_t& s) {
  s = s * 6364136223846793005ull + 1442695040888963407ull;
  return s >> 33;
}

}  // namespace

CpuInfo cpu_info() {
  CpuInfo i;
  i.hardware_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  i.features = cpu_features().describe();
  i.best_isa = linear_isa_name(auto_isa());
  return i;
}

struct CpuCalibrator::Impl {
  int hidden = 0, d_ff = 0;
  LinearIsa isa = LinearIsa::Scalar;
  bool gpu_order = false;  // bf16 through mlp_forward_gpu_order
  std::string isa_name;
  quant::ExpertLayout layout;
  std::vector<std::vector<uint16_t>> storage;  // per expert: gate | up | down
  std::vector<MlpWeights> experts;
  std::vector<std::vector<uint8_t>> blobs;     // quantized: per expert, one blob
};

CpuCalibrator::CpuCalibrator(const ModelConfig& c, int pool, const std::string& isa, quant::ExpertDType dtype, int group)
    : impl_(std::make_unique<Impl>()) {
  if (pool < 1) throw Error("calibrate: the CPU expert pool must hold at least 1 expert");
  if (c.hidden_size <= 0 || c.moe_intermediate_size <= 0) throw Error("calibrate: the model has no routed-expert shape");
  Impl& m = *impl_;
  m.hidden = c.hidden_size;
  m.d_ff = c.moe_intermediate_size;
  m.layout = quant::expert_layout(dtype, m.hidden, m.d_ff, group);
  const bool quantized = dtype != quant::ExpertDType::BF16;
  // Quantized experts: "auto" is the quantized kernels' own choice (LinearIsa::Auto).
  // gpu-order: bf16 experts through mlp_forward_gpu_order, the kernel of the runtime's `--cpu-rounding gpu-order`.
  const bool gpu_order_shapes = m.hidden % 256 == 0 && m.d_ff % 8 == 0;
  if (!quantized && isa == "gpu-order") {
    if (!gpu_order_vectorized()) throw Error("calibrate: kernel gpu-order needs AVX-512BW, which this CPU lacks");
    if (!gpu_order_shapes) throw Error("calibrate: kernel gpu-order needs hidden % 256 == 0 and d_ff % 8 == 0");
    m.gpu_order = true;
    m.isa = LinearIsa::Avx512;
    m.isa_name = "gpu-order";
  } else {
    m.isa = quantized && isa == "auto" ? LinearIsa::Auto : parse_isa(isa);
    m.isa_name = m.isa == LinearIsa::Auto ? "auto" : linear_isa_name(m.isa);
  }
  const size_t per = static_cast<size_t>(m.d_ff) * m.hidden;
  uint64_t seed = 12345;
  // bf16: the pool's experts as bf16 views; quantized: one blob each, quantized from that expert's own
  // random weights (one bf16 expert alive at a time), so every blob streams from DRAM.
  const int kept = quantized ? 1 : pool;
  m.storage.resize(static_cast<size_t>(kept));
  m.experts.resize(static_cast<size_t>(kept));
  if (quantized) m.blobs.resize(static_cast<size_t>(pool));
  for (int e = 0; e < pool; ++e) {
    const size_t at = quantized ? 0 : static_cast<size_t>(e);
    std::vector<uint16_t>& s = m.storage[at];
    s.resize(3 * per);
    // Random values of a trained expert's scale (|w| up to ~0.02); only the timing matters here.
    for (uint16_t& v : s) v = f32_to_bf16((static_cast<float>(lcg(seed) % 2001) - 1000.f) * 2e-5f);
    MlpWeights& w = m.experts[at];
    w.gate = Matrix{s.data(), DType::BF16, m.d_ff, m.hidden};
    w.up = Matrix{s.data() + per, DType::BF16, m.d_ff, m.hidden};
    w.down = Matrix{s.data() + 2 * per, DType::BF16, m.hidden, m.d_ff};
    if (quantized) {
      m.blobs[static_cast<size_t>(e)].resize(m.layout.bytes);
      quant::quantize_expert(m.layout, w.gate, w.up, w.down, m.blobs[static_cast<size_t>(e)].data());
    }
  }
  if (quantized) {
    m.storage.clear();
    m.experts.clear();
  }
}

CpuCalibrator::~CpuCalibrator() = default;

const std::string& CpuCalibrator::isa_name() const { return impl_->isa_name; }
quant::ExpertDType CpuCalibrator::expert_dtype() const { return impl_->layout.dtype; }
size_t CpuCalibrator::expert_bytes() const {
  return impl_->layout.dtype == quant::ExpertDType::BF16 ? static_cast<size_t>(3) * impl_->d_ff * impl_->hidden * sizeof(uint16_t) : impl_->layout.bytes;
}

std::vector<double> CpuCalibrator::expert_ms(int tokens, int threads, int concurrent, int iters, int repeats) {
  if (tokens < 1 || threads < 1 || concurrent < 1 || iters < 1 || repeats < 1) {
    throw Error("calibrate: CPU expert timing needs tokens, threads, concurrent, iters and repeats >= 1");
  }
  Impl& m = *impl_;
  const bool quantized = !m.blobs.empty();
  const int pool = static_cast<int>(quantized ? m.blobs.size() : m.experts.size());
  struct Worker {
    std::unique_ptr<ThreadPool> tp;
    FfnScratch scratch;
    std::vector<float> x, y;
    int next = 0;
  };
  std::vector<Worker> workers(static_cast<size_t>(concurrent));
  for (int w = 0; w < concurrent; ++w) {
    Worker& k = workers[static_cast<size_t>(w)];
    k.tp = std::make_unique<ThreadPool>(threads);
    k.x.resize(static_cast<size_t>(tokens) * m.hidden);
    k.y.resize(k.x.size());
    for (size_t i = 0; i < k.x.size(); ++i) k.x[i] = (static_cast<float>((i * 7 + w) % 97) - 48.f) * 0.01f;
    k.next = (w * pool) / concurrent;  // workers start at different experts of the pool
  }
  auto run_worker = [&](Worker& k, int n) {
    for (int i = 0; i < n; ++i) {
      const size_t at = static_cast<size_t>(k.next);
      k.next = (k.next + 1) % pool;
      if (quantized) {
        quant::expert_ffn_q_forward(k.x.data(), tokens, m.layout, m.blobs[at].data(), k.y.data(), false, 1.f, k.tp.get(), k.scratch, m.isa);
      } else if (m.gpu_order) {
        mlp_forward_gpu_order(k.x.data(), tokens, m.experts[at], k.y.data(), false, 1.f, k.tp.get(), k.scratch, true);
      } else {
        mlp_forward(k.x.data(), tokens, m.experts[at], k.y.data(), false, 1.f, k.tp.get(), k.scratch, m.isa);
      }
    }
  };
  // All workers run `n` experts at once; returns the wall time in ms.
  auto round = [&](int n) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int w = 1; w < concurrent; ++w) {
      ts.emplace_back([&, w] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        run_worker(workers[static_cast<size_t>(w)], n);
      });
    }
    while (ready.load() < concurrent - 1) std::this_thread::yield();
    const auto t0 = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    run_worker(workers[0], n);
    for (std::thread& t : ts) t.join();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  round(1);  // warm-up: page in the scratch buffers, wake the pools
  std::vector<double> out;
  out.reserve(static_cast<size_t>(repeats));
  for (int r = 0; r < repeats; ++r) out.push_back(round(iters) / iters);
  return out;
}

#ifndef MOE_WITH_CUDA
bool cuda_built() { return false; }
std::unique_ptr<CudaCalibrator> make_cuda_calibrator(const ModelConfig&, int, int, quant::ExpertDType, int) {
  throw Error("this build has no CUDA backend (the native engine was built without CUDA: no nvcc, CUDA toolkit or "
              "cuBLAS found); GPU figures can only be measured on a machine with a GPU (tools/gpu/README.md), "
              "or use --device cpu --cpu-only --base <profile> to measure the CPU figures only");
}
#endif

}  // namespace moe::calibrate
