#pragma once
// The CUDA backend (issue 5): the whole DeepSeek-V2 model resident on one GPU. Built only when
// CMake finds nvcc, the CUDA toolkit and cuBLAS (option MOE_CUDA); engine.cpp creates it for
// device 'cuda'. See README.md beside this file for the design, numerics and what is partial.
#include <memory>

#include "moe/backend.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantized_file.h"

namespace moe {

struct CudaBackendOptions {
  int device = 0;           // CUDA device ordinal
  bool use_graphs = true;   // decode steps replay captured CUDA graphs (env MOE_CUDA_GRAPHS=0: off)
  // Offloading (issue 6): >= 0: routed experts stay in pinned host memory and the GPU holds this many
  // expert slots per MoE layer (0: every expert streamed through staging); -1: everything resident.
  int offload_slots = -1;
  int staging_buffers = 4;  // staging ring for experts the cache bypasses
  // > 0: the engine's device allocations may not exceed this many bytes (checked after every
  // allocation; the arithmetic that chose the slot count is runtime/src/offload/gpu-budget.ts).
  uint64_t gpu_budget_bytes = 0;
  // Issue 13: storage and compute format of the offloaded routed experts (quantized needs offload_slots >= 0).
  quant::ExpertDType expert_dtype = quant::ExpertDType::BF16;
  int expert_group = quant::kDefaultInt4Group;
  quant::QuantizedFileSpec quantized_file;  // quantized experts only; empty path: none (moe/quant/quantized_file.h)
};

std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& config, const ModelWeights& weights,
                                           const CudaBackendOptions& options);

}  // namespace moe
