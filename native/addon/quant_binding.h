#pragma once
// Binding of the quantized-expert helpers (issue 13): exports.expertLayout, exports.quantFidelity.
#include <napi.h>

namespace moe_addon {

void register_quant(Napi::Env env, Napi::Object exports);

}  // namespace moe_addon
