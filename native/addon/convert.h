#pragma once
// JS value -> engine struct conversions for the addon. Every error names the field; the TypeScript
// layer has validated already, so these only guard the binding against misuse.
#include <napi.h>

#include <vector>

#include "moe/config.h"
#include "moe/engine.h"
#include "moe/weights.h"

namespace moe_addon {

moe::ModelConfig to_config(const Napi::Object& o);
std::vector<moe::TensorSource> to_tensors(const Napi::Array& a);
moe::EngineOptions to_engine_options(const Napi::Object& o);
// {path, mode: 'read' | 'write', header: Buffer}: the quantized experts file (moe/quant/quantized_file.h)
moe::quant::QuantizedFileSpec to_quantized_file(const Napi::Value& v);
moe::GenerationRequest to_request(const Napi::Object& o);
// {prompt: Int32Array, maxNewTokens, greedy, temperature, topP, seed, stopOnEos}
moe::SequenceRequest to_sequence_request(const Napi::Object& o);

}  // namespace moe_addon
