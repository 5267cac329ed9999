#include "host_experts.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "cuda_check.h"
#include "moe/error.h"
#include "moe/quant/quantize.h"
#include "moe/tensor.h"

namespace moe::cuda_backend {
namespace {

struct Piece {
  const Matrix* m;
  size_t begin, end;  // elements of m
  size_t dst;         // element offset in the host buffer where element `begin` goes
};

void check_matrix(const Matrix& m, int rows, int cols, const std::string& what) {
  if (m.empty() || m.rows != rows || m.cols != cols) {
    throw Error("CUDA backend: " + what + " is [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + "], expected [" +
                std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
}

void copy_piece(const Piece& p, uint16_t* out) {
  const Matrix& m = *p.m;
  const size_t n = p.end - p.begin;
  uint16_t* dst = out + p.dst;
  switch (m.dtype) {
    case DType::BF16:
      std::memcpy(dst, static_cast<const uint16_t*>(m.data) + p.begin, n * 2);
      break;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(m.data) + p.begin;
      for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(f16_to_f32(s[i]));
      break;
    }
    default: {
      const float* s = static_cast<const float*>(m.data) + p.begin;
      for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(s[i]);
      break;
    }
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

HostExperts::HostExperts(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers,
                         const quant::ExpertLayout& layout)
    : layout_(layout), stride_(layout.bytes), experts_(static_cast<size_t>(c.n_routed_experts)) {
  const int H = c.hidden_size, dff = c.moe_intermediate_size, E = c.n_routed_experts;
  if (layout.hidden != H || layout.d_ff != dff) throw Error("CUDA backend: the expert layout does not match the model's shape (internal error)");
  const bool quantized = layout.dtype != quant::ExpertDType::BF16;
  bytes_ = moe_layers.size() * experts_ * stride_;
  if (bytes_ == 0) return;
  // Tasks: bf16 copies pieces of 8 MB (many per expert, so 16 threads share even one layer's work);
  // quantization takes one expert per task (quantize_expert writes a whole blob).
  std::vector<Piece> pieces;
  std::vector<const MlpWeights*> whole;  // quantized: expert (mi * E + e)
  constexpr size_t kPiece = size_t(4) << 20;  // elements per piece (8 MB of bf16)
  for (size_t mi = 0; mi < moe_layers.size(); ++mi) {
    const LayerWeights& L = w.layers.at(static_cast<size_t>(moe_layers[mi]));
    if (L.experts.size() != experts_) throw Error("CUDA backend: layer " + std::to_string(moe_layers[mi]) + " expert count differs from the config");
    for (int e = 0; e < E; ++e) {
      const MlpWeights& X = L.experts[static_cast<size_t>(e)];
      const std::string at = "layer " + std::to_string(moe_layers[mi]) + " expert " + std::to_string(e) + " ";
      check_matrix(X.gate, dff, H, at + "gate_proj");
      check_matrix(X.up, dff, H, at + "up_proj");
      check_matrix(X.down, H, dff, at + "down_proj");
      if (quantized) {
        whole.push_back(&X);
        continue;
      }
      const size_t base = (mi * experts_ + static_cast<size_t>(e)) * stride_ / sizeof(uint16_t);  // in bf16 elements
      const Matrix* parts[3] = {&X.gate, &X.up, &X.down};
      for (int part = 0; part < 3; ++part) {
        const size_t n = static_cast<size_t>(dff) * H, at_part = base + static_cast<size_t>(part) * n;
        for (size_t b = 0; b < n; b += kPiece) pieces.push_back({parts[part], b, std::min(n, b + kPiece), at_part + b});
      }
    }
  }
  const size_t tasks = quantized ? whole.size() : pieces.size();
  const auto t0 = std::chrono::steady_clock::now();
  void* mem = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw Error("CUDA backend: cannot reserve " + std::to_string(bytes_ >> 20) + " MiB of host memory for the routed experts");
#ifdef MADV_HUGEPAGE
  madvise(mem, bytes_, MADV_HUGEPAGE);
#endif
  base_ = static_cast<uint8_t*>(mem);
  uint16_t* out = reinterpret_cast<uint16_t*>(base_);

  std::atomic<size_t> next{0}, done_bytes{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;
  const int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&]() {
      try {
        for (;;) {
          const size_t i = next.fetch_add(1);
          if (i >= tasks || failed.load()) break;
          if (quantized) {
            const MlpWeights& X = *whole[i];
            quant::quantize_expert(layout_, X.gate, X.up, X.down, base_ + i * stride_);
            done_bytes.fetch_add(stride_);
          } else {
            copy_piece(pieces[i], out);
            done_bytes.fetch_add((pieces[i].end - pieces[i].begin) * sizeof(uint16_t));
          }
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (error.empty()) error = e.what();
        failed.store(true);
      }
    });
  }
  // Progress on stderr every 10% (the load of a full-size model takes seconds).
  // bf16 padding (a blob rounded up to 256 bytes) is never written: the count stops short of bytes_.
  const size_t total = quantized ? bytes_ : moe_layers.size() * experts_ * 3 * static_cast<size_t>(dff) * H * sizeof(uint16_t);
  const std::string what = quantized ? std::string("routed experts -> ") + quant::expert_dtype_name(layout_.dtype) + " in host memory"
                                    : std::string("routed experts -> host memory");
  int reported = 0;
  while (done_bytes.load() < total && !failed.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int pct = static_cast<int>(100.0 * static_cast<double>(done_bytes.load()) / static_cast<double>(total));
    if (pct / 10 > reported / 10 && pct < 100) {
      reported = pct;
      std::fprintf(stderr, "moe: %s: %d%% (%.1f of %.1f GB, %.1f s)\n", what.c_str(), pct, 1e-9 * static_cast<double>(done_bytes.load()),
                   1e-9 * static_cast<double>(total), seconds_since(t0));
    }
  }
  for (std::thread& t : pool) t.join();
  if (!error.empty()) {
    munmap(mem, bytes_);
    base_ = nullptr;
    throw Error(std::string("CUDA backend: ") + (quantized ? "quantizing" : "copying") + " the routed experts to host memory failed: " + error);
  }
  (quantized ? quantize_seconds : copy_seconds) = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  const cudaError_t r = cudaHostRegister(mem, bytes_, cudaHostRegisterDefault);
  if (r != cudaSuccess) {
    cudaGetLastError();
    munmap(mem, bytes_);
    base_ = nullptr;
    throw Error("CUDA backend: cannot page-lock " + std::to_string(bytes_ >> 20) + " MiB of host memory for the routed experts (" +
                cudaGetErrorString(r) + "); the offloaded experts need that much RAM, locked");
  }
  registered_ = true;
  pin_seconds = seconds_since(t1);
  if (quantized) {
    std::fprintf(stderr, "moe: routed experts in pinned host memory: %.1f GB %s (quantize %.1f s, pin %.1f s)\n",
                 1e-9 * static_cast<double>(bytes_), quant::expert_dtype_name(layout_.dtype), quantize_seconds, pin_seconds);
  } else {
    std::fprintf(stderr, "moe: routed experts in pinned host memory: %.1f GB (copy %.1f s, pin %.1f s)\n", 1e-9 * static_cast<double>(bytes_),
                 copy_seconds, pin_seconds);
  }
}

HostExperts::~HostExperts() {
  if (base_ == nullptr) return;
  if (registered_) cudaHostUnregister(base_);
  munmap(base_, bytes_);
}

}  // namespace moe::cuda_backend
