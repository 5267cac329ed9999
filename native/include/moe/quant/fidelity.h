#pragma once
// Fidelity of quantized experts (issue 13, item 4): for every routed expert of a loaded checkpoint,
// the relative error of its quantized output against its bf16 (checkpoint-dtype) output on the same
// activation rows, ||y_q - y_ref|| / ||y_ref|| (Frobenius norm over all rows, in double). y_ref is
// moe::mlp_forward on the checkpoint's weights, y_q expert_ffn_q_forward on the expert quantized with
// quantize_expert: the two kernels differ only by the weights, so this measures the format alone.
#include <cstdint>
#include <functional>
#include <vector>

#include "moe/config.h"
#include "moe/kernels.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantize.h"
#include "moe/weights.h"

namespace moe::quant {

struct FidelityOptions {
  ExpertDType dtype = ExpertDType::INT8;  // INT8 or INT4 (BF16 is accepted: errors then measure kernel noise)
  int group = kDefaultInt4Group;          // int4 group size
  Int4Fit int4_fit = Int4Fit::Search;     // int4: how the groups' scale and zero are chosen (quantize.h)
  int rows = 16;                          // activation rows per expert
  // Caller-given rows: fp32 [x_layers, rows, hidden]: x_layers 1, the same rows for every layer, or
  // the MoE layer count, each MoE layer's own rows in model order (real activations: each layer's MoE input
  // captured from a run). Null: per MoE layer, `rows` seeded random rows shaped like the experts' real
  // input, rmsnorm(g) * post_attention_layernorm with g ~ N(0, 1) (Box-Muller on moe::Rng(seed,
  // layer)). Every expert of a layer sees the same rows.
  const float* x = nullptr;
  int x_layers = 1;
  uint64_t seed = 0;
  int threads = 0;                        // experts computed in parallel; 0: hardware threads
  LinearIsa isa = LinearIsa::Auto;        // both kernels run with it
  // Called after each expert with (done, total), one call at a time (under a lock) from any thread.
  std::function<void(int, int)> progress;
};

struct FidelityResult {
  std::vector<int> layers;     // the model layer index of each MoE layer, in order
  int experts = 0;             // routed experts per layer
  std::vector<double> errors;  // [layers.size() * experts], layer-major; 0 when both outputs are zero
};

// Throws moe::Error for bad options (naming them) or a layout the shapes do not allow.
FidelityResult expert_fidelity(const ModelConfig& config, const ModelWeights& weights, const FidelityOptions& options);

}  // namespace moe::quant
