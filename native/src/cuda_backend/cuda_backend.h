#pragma once
// The CUDA backend (issue 5): the whole DeepSeek-V2 model resident on one GPU. Built only when
// CMake finds nvcc, the CUDA toolkit and cuBLAS (option MOE_CUDA); engine.cpp creates it for
// device 'cuda'. See README.md beside this file for the design, numerics and what is partial.
#include <memory>

#include "moe/backend.h"

namespace moe {

struct CudaBackendOptions {
  int device = 0;           // CUDA device ordinal
  bool use_graphs = true;   // decode steps replay captured CUDA graphs (env MOE_CUDA_GRAPHS=0: off)
};

std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& config, const ModelWeights& weights,
                                           const CudaBackendOptions& options);

}  // namespace moe
