#pragma once
// One hook that sees every named intermediate of the forward (llama.cpp's per-op callback idea):
// name is e.g. "attn_norm", "q", "c_kv", "k_pe", "attn_out", "h_attn", "router_logits", "ffn_out",
// "h" (a layer's output, = transformers' hidden_states[layer + 1]), "final_norm", "logits";
// layer is -1 outside the layers. data is [rows, cols] fp32 for the batch's rows.
#include <functional>

namespace moe {

using DebugHook = std::function<void(const char* name, int layer, const float* data, int rows, int cols)>;

}  // namespace moe
