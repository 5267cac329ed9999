#pragma once
// The whole model resident on the GPU, laid out for the forward (one allocation):
// - q_proj and kv_a_proj_with_mqa stacked into one [q_out + kv_lora + rope, hidden] matrix, so one
//   GEMM gives [q | c_kv | k_pe] per token;
// - every MLP's gate and up stacked into [2 * d_ff, hidden] (gate rows first): one GEMM, then SiLU-mul;
// - a MoE layer's 64 experts back to back ([2 * d_ff, hidden] then [hidden, d_ff] each), with device
//   arrays of per-expert gate / up / down pointers for the grouped kernels;
// - norms in fp32, everything else bf16 (f16 / f32 checkpoints are converted on upload).
// Upload: the checkpoint's memory-mapped tensors are copied through pinned staging buffers by a few
// host threads, each with its own stream, so page faults, memcpy and PCIe overlap.
#include <cuda_bf16.h>

#include <cstdint>
#include <vector>

#include "device_memory.h"
#include "moe/config.h"
#include "moe/weights.h"

namespace moe::cuda_backend {

using bf16 = __nv_bfloat16;

struct DeviceLayer {
  float* input_norm = nullptr;
  float* post_norm = nullptr;
  float* kv_a_norm = nullptr;
  bf16* qkv_a = nullptr;  // [q_out + kv_lora + rope, hidden]
  bf16* kv_b = nullptr;   // [heads * (nope + v), kv_lora]
  bf16* o_proj = nullptr; // [hidden, heads * v]
  bool moe = false;
  bf16* dense_gu = nullptr;    // !moe: [2 * intermediate, hidden]
  bf16* dense_down = nullptr;  // !moe: [hidden, intermediate]
  bf16* router = nullptr;      // moe: [n_experts, hidden]
  bf16* shared_gu = nullptr;   // moe with shared experts: [2 * shared_ff, hidden]
  bf16* shared_down = nullptr; // [hidden, shared_ff]
  bf16* experts = nullptr;     // [n_experts] x ([2 * d_ff, hidden] then [hidden, d_ff])
  const bf16** p_gate = nullptr;  // device [n_experts]
  const bf16** p_up = nullptr;
  const bf16** p_down = nullptr;
};

class DeviceWeights {
 public:
  // Uploads everything; throws moe::Error on an unsupported geometry and CudaError on a CUDA failure.
  // routed_on_host: the routed experts are not uploaded (offloading: HostExperts holds them), their
  // DeviceLayer fields stay null.
  DeviceWeights(const ModelConfig& c, const ModelWeights& w, bool routed_on_host = false);

  const bf16* embed = nullptr;    // [vocab, hidden]
  const bf16* lm_head = nullptr;  // [vocab, hidden]
  const float* final_norm = nullptr;
  std::vector<DeviceLayer> layers;
  int q_out = 0;          // heads * qk_head_dim
  int qkv_width = 0;      // q_out + kv_lora + rope
  int shared_ff = 0;      // n_shared * moe_intermediate
  size_t expert_stride = 0;  // resident experts (always bf16): elements from one expert to the next.
                             // Offloaded experts use their blob size instead (ExpertLayout::bytes, any dtype).
  uint64_t bytes() const { return memory_.bytes(); }
  double upload_seconds = 0;

 private:
  DeviceMemory memory_;
};

}  // namespace moe::cuda_backend
