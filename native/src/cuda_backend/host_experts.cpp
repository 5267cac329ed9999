#include "host_experts.h"

#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cuda_check.h"
#include "moe/error.h"
#include "moe/quant/expert_blobs.h"

namespace moe::cuda_backend {

HostExperts::HostExperts(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers,
                         const quant::ExpertLayout& layout, const quant::QuantizedFileSpec* file)
    : layout_(layout), stride_(layout.bytes), experts_(static_cast<size_t>(c.n_routed_experts)) {
  const bool quantized = layout.dtype != quant::ExpertDType::BF16;
  if (file != nullptr && !quantized) throw Error("CUDA backend: a quantized experts file is for int8 / int4 experts only");
  bytes_ = quant::expert_blobs_bytes(c, moe_layers, layout);
  if (bytes_ == 0) return;
  void* mem = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw Error("CUDA backend: cannot reserve " + std::to_string(bytes_ >> 20) + " MiB of host memory for the routed experts");
#ifdef MADV_HUGEPAGE
  madvise(mem, bytes_, MADV_HUGEPAGE);
#endif
  base_ = static_cast<uint8_t*>(mem);
  try {
    if (file != nullptr) {
      has_file = true;
      file_result = quant::fill_expert_blobs_with_file(c, w, moe_layers, layout, base_, *file, quantize_seconds);
    } else {
      (quantized ? quantize_seconds : copy_seconds) = quant::fill_expert_blobs(c, w, moe_layers, layout, base_);
    }
  } catch (const std::exception& e) {
    munmap(mem, bytes_);
    base_ = nullptr;
    throw Error(std::string("CUDA backend: ") + (quantized ? "quantizing" : "copying") + " the routed experts to host memory failed: " + e.what());
  }
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
  pin_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  if (!quantized) {
    std::fprintf(stderr, "moe: routed experts in pinned host memory: %.1f GB (copy %.1f s, pin %.1f s)\n", 1e-9 * static_cast<double>(bytes_),
                 copy_seconds, pin_seconds);
  } else if (has_file && file_result.read) {
    std::fprintf(stderr, "moe: routed experts in pinned host memory: %.1f GB %s (read %.1f s from %s%s, pin %.1f s)\n", 1e-9 * static_cast<double>(bytes_),
                 quant::expert_dtype_name(layout_.dtype), file_result.read_seconds, file_result.path.c_str(),
                 file_result.rebuilt > 0 ? ", some experts quantized again" : "", pin_seconds);
  } else {
    std::fprintf(stderr, "moe: routed experts in pinned host memory: %.1f GB %s (quantize %.1f s%s, pin %.1f s)\n", 1e-9 * static_cast<double>(bytes_),
                 quant::expert_dtype_name(layout_.dtype), quantize_seconds,
                 has_file && file_result.written ? (", written to " + file_result.path).c_str() : "", pin_seconds);
  }
}

HostExperts::~HostExperts() {
  if (base_ == nullptr) return;
  if (registered_) cudaHostUnregister(base_);
  munmap(base_, bytes_);
}

}  // namespace moe::cuda_backend
