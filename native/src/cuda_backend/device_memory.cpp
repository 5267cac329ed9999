#include "device_memory.h"

#include <atomic>
#include <string>

#include "cuda_check.h"

namespace moe::cuda_backend {
namespace {
std::atomic<uint64_t> g_current{0};
std::atomic<uint64_t> g_peak{0};
}  // namespace

DeviceMemoryStats device_memory_stats() { return {g_current.load(), g_peak.load()}; }

DeviceMemory::DeviceMemory(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t e = cudaMalloc(&ptr_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw cuda::CudaError("CUDA backend: cannot allocate " + std::to_string(bytes >> 20) + " MiB on the GPU (" +
                          std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) +
                          " MiB): " + cudaGetErrorString(e));
  }
  const uint64_t now = g_current.fetch_add(bytes) + bytes;
  uint64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}

void DeviceMemory::release() {
  if (ptr_ != nullptr) {
    cudaFree(ptr_);
    g_current.fetch_sub(bytes_);
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

PinnedMemory::PinnedMemory(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
}

void PinnedMemory::release() {
  if (ptr_ != nullptr) cudaFreeHost(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace moe::cuda_backend
