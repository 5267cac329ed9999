// RAII wrappers of the CUDA resources calibrate_cuda.cpp measures with (device and pinned host buffers,
// events) and its graph capture. The calibrator keeps its own instead of the CUDA backend's: it rebuilds the
// backend's sequences from the kernel API and does not depend on the backend (calibrate_cuda.cpp's header).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "cuda_check.h"

namespace moe::calibrate {

// Captures `count` calls of `launch` on `stream` into an instantiated graph (the caller destroys it). A
// launch that throws mid-capture ends the capture first, so the stream is usable again.
template <typename F>
inline cudaGraphExec_t capture_graph(cudaStream_t stream, int count, F&& launch) {
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    for (int i = 0; i < count; ++i) launch();
  } catch (...) {
    cudaStreamEndCapture(stream, &g);
    if (g) cudaGraphDestroy(g);
    throw;
  }
  CUDA_CHECK(cudaStreamEndCapture(stream, &g));
  const cudaError_t inst = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  CUDA_CHECK(inst);
  return exec;
}

struct Dev {
  void* p = nullptr;
  Dev() = default;
  explicit Dev(size_t bytes) { CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 256))); }
  ~Dev() {
    if (p) cudaFree(p);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  Dev(Dev&& o) noexcept : p(o.p) { o.p = nullptr; }
  Dev& operator=(Dev&& o) noexcept {
    if (this != &o) {
      if (p) cudaFree(p);
      p = o.p;
      o.p = nullptr;
    }
    return *this;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

struct Pinned {
  void* p = nullptr;
  explicit Pinned(size_t bytes) { CUDA_CHECK(cudaHostAlloc(&p, std::max<size_t>(bytes, 256), cudaHostAllocDefault)); }
  ~Pinned() {
    if (p) cudaFreeHost(p);
  }
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
};

struct Event {
  cudaEvent_t e = nullptr;
  Event() { CUDA_CHECK(cudaEventCreate(&e)); }
  ~Event() {
    if (e) cudaEventDestroy(e);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

}  // namespace moe::calibrate
