#pragma once
// Routed experts offloaded to host memory (issue 6): every routed expert of every MoE layer copied once
// from the memory-mapped checkpoint into one page-locked (pinned) host buffer, converted to bf16, in the
// resident layout (gate | up | down contiguous, DeviceWeights::expert_stride elements), so one
// cudaMemcpyAsync moves one expert (17.3 MB for DeepSeek-V2-Lite) at full PCIe speed.
// Loading: anonymous memory filled by several host threads (first touch, conversion), then registered
// with CUDA (cudaHostRegister) - faster than cudaHostAlloc, which zeroes the pages on one thread first.
// Progress goes to stderr (28.8 GB takes seconds).
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "moe/config.h"
#include "moe/weights.h"

namespace moe::cuda_backend {

class HostExperts {
 public:
  // moe_layers: model layer ids of the MoE layers (index mi = position in this list).
  HostExperts(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers, size_t expert_stride);
  ~HostExperts();
  HostExperts(const HostExperts&) = delete;
  HostExperts& operator=(const HostExperts&) = delete;

  const __nv_bfloat16* expert(int mi, int e) const {
    return base_ + (static_cast<size_t>(mi) * experts_ + static_cast<size_t>(e)) * stride_;
  }
  size_t expert_bytes() const { return stride_ * sizeof(__nv_bfloat16); }
  uint64_t bytes() const { return bytes_; }
  double copy_seconds = 0;  // checkpoint -> host buffer (page faults of both, conversion)
  double pin_seconds = 0;   // cudaHostRegister

 private:
  __nv_bfloat16* base_ = nullptr;
  size_t bytes_ = 0;
  size_t stride_ = 0;
  size_t experts_ = 0;
  bool registered_ = false;
};

}  // namespace moe::cuda_backend
