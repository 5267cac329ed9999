#pragma once
// The offloaded routed experts as one buffer of blobs (expert_format.h), the form in which host memory, the
// GPU slots, the CPU experts and the quantized experts file hold them: blob i = mi * E + e is expert e of
// MoE layer mi (mi indexes `moe_layers`, the model layer ids of the MoE layers), layout.bytes each, back to
// back. Filling it from the checkpoint is the load's long step (bf16: a copy, converting F16 / F32; int8 /
// int4: quantize_expert, one expert per task), spread over the host's threads with progress on stderr.
// Portable code: the CUDA backend's HostExperts page-locks the buffer afterwards; tests and the addon's
// expertBlobs use it on a machine without a GPU.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "moe/config.h"
#include "moe/quant/expert_format.h"
#include "moe/weights.h"

namespace moe::quant {

// The model layer ids of the MoE layers, ascending (index mi of the blob order).
std::vector<int> moe_layer_ids(const ModelWeights& w);

// Bytes of the buffer: moe_layers.size() * n_routed_experts * layout.bytes.
size_t expert_blobs_bytes(const ModelConfig& c, const std::vector<int>& moe_layers, const ExpertLayout& layout);

// Throws moe::Error naming the layer, expert and matrix when a routed expert's shape differs from the
// config (or the layout from the model's shape).
void check_routed_experts(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers, const ExpertLayout& layout);

// Writes blobs into out[0 .. expert_blobs_bytes): all of them, or only the blob indices in `only` (a
// quantized layout; the quantized experts file's repair of experts whose checksum failed). Checks shapes
// first. Returns the seconds it took.
double fill_expert_blobs(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers, const ExpertLayout& layout,
                         uint8_t* out, const std::vector<size_t>* only = nullptr);

}  // namespace moe::quant
