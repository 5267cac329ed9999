#pragma once
// Routed experts offloaded to host memory (issue 6): every routed expert of every MoE layer copied once
// from the memory-mapped checkpoint into one page-locked (pinned) host buffer as one blob of
// layout.bytes (moe/quant/expert_format.h), experts back to back, so one cudaMemcpyAsync moves one
// expert (17.3 MB in bf16 for DeepSeek-V2-Lite, about half in int8, a quarter in int4) at full PCIe
// speed. Filling the buffer is moe/quant/expert_blobs.h (bf16 copied, int8 / int4 quantized) or, for a
// quantized layout with a quantized experts file, moe/quant/quantized_file.h (read, or quantized and written).
// Loading: anonymous memory filled by several host threads (first touch, conversion or quantization),
// then registered with CUDA (cudaHostRegister) - faster than cudaHostAlloc, which zeroes the pages on one
// thread first. Progress goes to stderr (28.8 GB takes seconds).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "moe/config.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantized_file.h"
#include "moe/weights.h"

namespace moe::cuda_backend {

class HostExperts {
 public:
  // moe_layers: model layer ids of the MoE layers (index mi = position in this list).
  // layout: the blob of one expert (its dtype decides copy or quantization).
  // file: the quantized experts file to read or write (quantized layouts only); nullptr: none.
  HostExperts(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers, const quant::ExpertLayout& layout,
              const quant::QuantizedFileSpec* file);
  ~HostExperts();
  HostExperts(const HostExperts&) = delete;
  HostExperts& operator=(const HostExperts&) = delete;

  // The blob of expert e of MoE layer mi (bf16: gate | up | down as __nv_bfloat16).
  const uint8_t* expert(int mi, int e) const {
    return base_ + (static_cast<size_t>(mi) * experts_ + static_cast<size_t>(e)) * stride_;
  }
  size_t expert_bytes() const { return stride_; }
  const quant::ExpertLayout& layout() const { return layout_; }
  uint64_t bytes() const { return bytes_; }
  double copy_seconds = 0;      // bf16: checkpoint -> host buffer (page faults of both, conversion)
  double quantize_seconds = 0;  // int8 / int4: checkpoint -> quantized blobs (0 after a clean read of the file)
  double pin_seconds = 0;       // cudaHostRegister
  bool has_file = false;        // a quantized experts file was named; file_result says what the load did with it
  quant::QuantizedFileResult file_result;

 private:
  quant::ExpertLayout layout_;
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
  size_t stride_ = 0;  // bytes from one expert to the next (layout_.bytes)
  size_t experts_ = 0;
  bool registered_ = false;
};

}  // namespace moe::cuda_backend
