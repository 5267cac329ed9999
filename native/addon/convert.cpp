#include "convert.h"

#include <cmath>
#include <string>

namespace moe_addon {

namespace {

[[noreturn]] void fail(const Napi::Env& env, const std::string& what) { throw Napi::TypeError::New(env, what); }

Napi::Value field(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) fail(o.Env(), std::string("native: missing field ") + name);
  return v;
}

double num(const Napi::Object& o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsNumber()) fail(o.Env(), std::string("native: field ") + name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(o.Env(), std::string("native: field ") + name + " must be finite");
  return d;
}

int integer(const Napi::Object& o, const char* name) {
  const double d = num(o, name);
  if (d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0) fail(o.Env(), std::string("native: field ") + name + " must be a 32-bit integer");
  return static_cast<int>(d);
}

bool boolean(const Napi::Object& o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsBoolean()) fail(o.Env(), std::string("native: field ") + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string str(const Napi::Object& o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsString()) fail(o.Env(), std::string("native: field ") + name + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// The generation fields a whole request (begin) and one added sequence (continuous batching) share.
template <typename Request>
void read_generation_fields(const Napi::Object& o, Request& r) {
  r.max_new_tokens = integer(o, "maxNewTokens");
  r.sampling.greedy = boolean(o, "greedy");
  r.sampling.temperature = static_cast<float>(num(o, "temperature"));
  r.sampling.top_p = static_cast<float>(num(o, "topP"));
  const double seed = num(o, "seed");
  if (seed < 0 || seed != std::floor(seed) || seed > 9007199254740991.0) fail(o.Env(), "native: seed must be a non-negative safe integer");
  r.seed = static_cast<uint64_t>(seed);
  r.stop_on_eos = boolean(o, "stopOnEos");
}

}  // namespace

moe::ModelConfig to_config(const Napi::Object& o) {
  moe::ModelConfig c;
  c.vocab_size = integer(o, "vocab_size");
  c.hidden_size = integer(o, "hidden_size");
  c.num_hidden_layers = integer(o, "num_hidden_layers");
  c.intermediate_size = integer(o, "intermediate_size");
  c.moe_intermediate_size = integer(o, "moe_intermediate_size");
  c.first_k_dense_replace = integer(o, "first_k_dense_replace");
  c.moe_layer_freq = integer(o, "moe_layer_freq");
  c.n_routed_experts = integer(o, "n_routed_experts");
  c.num_experts_per_tok = integer(o, "num_experts_per_tok");
  c.n_shared_experts = integer(o, "n_shared_experts");
  c.norm_topk_prob = boolean(o, "norm_topk_prob");
  c.routed_scaling_factor = num(o, "routed_scaling_factor");
  c.num_attention_heads = integer(o, "num_attention_heads");
  c.q_lora_rank = integer(o, "q_lora_rank");
  c.kv_lora_rank = integer(o, "kv_lora_rank");
  c.qk_nope_head_dim = integer(o, "qk_nope_head_dim");
  c.qk_rope_head_dim = integer(o, "qk_rope_head_dim");
  c.v_head_dim = integer(o, "v_head_dim");
  c.rms_norm_eps = num(o, "rms_norm_eps");
  c.max_position_embeddings = integer(o, "max_position_embeddings");
  c.bos_token_id = integer(o, "bos_token_id");
  c.eos_token_id = integer(o, "eos_token_id");
  c.tie_word_embeddings = boolean(o, "tie_word_embeddings");
  Napi::Value rv = field(o, "rope");
  if (!rv.IsObject()) fail(o.Env(), "native: field rope must be an object");
  Napi::Object r = rv.As<Napi::Object>();
  c.rope.type = str(r, "type");
  c.rope.theta = num(r, "theta");
  c.rope.factor = num(r, "factor");
  c.rope.original_max_position_embeddings = num(r, "original_max_position_embeddings");
  c.rope.beta_fast = num(r, "beta_fast");
  c.rope.beta_slow = num(r, "beta_slow");
  c.rope.mscale = num(r, "mscale");
  c.rope.mscale_all_dim = num(r, "mscale_all_dim");
  c.rope.attention_factor = num(r, "attention_factor");
  c.rope.truncate = boolean(r, "truncate");
  return c;
}

std::vector<moe::TensorSource> to_tensors(const Napi::Array& a) {
  std::vector<moe::TensorSource> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsObject()) fail(a.Env(), "native: tensors[" + std::to_string(i) + "] must be an object");
    Napi::Object t = v.As<Napi::Object>();
    moe::TensorSource s;
    s.name = str(t, "name");
    s.file = str(t, "file");
    const double off = num(t, "offset"), nb = num(t, "nbytes");
    if (off < 0 || nb < 0 || off > 9007199254740991.0 || nb > 9007199254740991.0) fail(a.Env(), "native: tensor " + s.name + ": bad offset/nbytes");
    s.offset = static_cast<uint64_t>(off);
    s.nbytes = static_cast<uint64_t>(nb);
    const std::string dt = str(t, "dtype");
    if (dt == "BF16") s.dtype = moe::DType::BF16;
    else if (dt == "F16") s.dtype = moe::DType::F16;
    else if (dt == "F32") s.dtype = moe::DType::F32;
    else fail(a.Env(), "native: tensor " + s.name + ": dtype " + dt + " is not BF16, F16 or F32");
    Napi::Value sv = field(t, "shape");
    if (!sv.IsArray()) fail(a.Env(), "native: tensor " + s.name + ": shape must be an array");
    Napi::Array shape = sv.As<Napi::Array>();
    for (uint32_t j = 0; j < shape.Length(); ++j) {
      Napi::Value d = shape.Get(j);
      if (!d.IsNumber()) fail(a.Env(), "native: tensor " + s.name + ": shape must hold numbers");
      s.shape.push_back(static_cast<int64_t>(d.As<Napi::Number>().Int64Value()));
    }
    out.push_back(std::move(s));
  }
  return out;
}

moe::quant::QuantizedFileSpec to_quantized_file(const Napi::Value& v) {
  if (!v.IsObject()) fail(v.Env(), "native: quantizedFile must be an object {path, mode, header}");
  Napi::Object q = v.As<Napi::Object>();
  moe::quant::QuantizedFileSpec spec;
  spec.path = str(q, "path");
  if (spec.path.empty()) fail(q.Env(), "native: quantizedFile.path is empty");
  const std::string mode = str(q, "mode");
  if (mode == "read") spec.mode = moe::quant::QuantizedFileSpec::Mode::Read;
  else if (mode == "write") spec.mode = moe::quant::QuantizedFileSpec::Mode::Write;
  else fail(q.Env(), "native: quantizedFile.mode must be 'read' or 'write', not '" + mode + "'");
  Napi::Value hv = field(q, "header");
  if (!hv.IsBuffer()) fail(q.Env(), "native: quantizedFile.header must be a Buffer");
  Napi::Buffer<uint8_t> h = hv.As<Napi::Buffer<uint8_t>>();
  spec.header.assign(h.Data(), h.Data() + h.Length());
  return spec;
}

moe::EngineOptions to_engine_options(const Napi::Object& o) {
  moe::EngineOptions e;
  e.device = str(o, "device");
  e.threads = integer(o, "threads");
  // Offloading (device 'cuda'); absent: everything resident, no budget.
  if (o.Has("offloadSlots") && !o.Get("offloadSlots").IsUndefined()) e.offload_slots = integer(o, "offloadSlots");
  if (o.Has("gpuBudgetBytes") && !o.Get("gpuBudgetBytes").IsUndefined()) {
    const double b = o.Get("gpuBudgetBytes").ToNumber().DoubleValue();
    if (!(b >= 0)) fail(o.Env(), "native: gpuBudgetBytes must be >= 0");
    e.gpu_budget_bytes = static_cast<uint64_t>(b);
  }
  // Issue 13: the offloaded experts' format; absent: bf16 (the checkpoint's weights, as before).
  if (o.Has("expertDtype") && !o.Get("expertDtype").IsUndefined()) {
    const std::string dt = str(o, "expertDtype");
    if (dt == "bf16") e.expert_dtype = moe::quant::ExpertDType::BF16;
    else if (dt == "int8") e.expert_dtype = moe::quant::ExpertDType::INT8;
    else if (dt == "int4") e.expert_dtype = moe::quant::ExpertDType::INT4;
    else fail(o.Env(), "native: expertDtype must be 'bf16', 'int8' or 'int4', not '" + dt + "'");
  }
  if (o.Has("expertGroup") && !o.Get("expertGroup").IsUndefined()) {
    e.expert_group = integer(o, "expertGroup");
    if (e.expert_group < 2 || e.expert_group % 2 != 0) fail(o.Env(), "native: expertGroup must be an even integer >= 2");
  }
  if (o.Has("quantizedFile") && !o.Get("quantizedFile").IsUndefined()) e.quantized_file = to_quantized_file(o.Get("quantizedFile"));
  return e;
}

moe::GenerationRequest to_request(const Napi::Object& o) {
  moe::GenerationRequest r;
  Napi::Value pv = field(o, "prompts");
  if (!pv.IsArray()) fail(o.Env(), "native: prompts must be an array of Int32Array");
  Napi::Array prompts = pv.As<Napi::Array>();
  for (uint32_t i = 0; i < prompts.Length(); ++i) {
    Napi::Value p = prompts.Get(i);
    if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      fail(o.Env(), "native: prompts[" + std::to_string(i) + "] must be an Int32Array");
    }
    Napi::Int32Array ids = p.As<Napi::Int32Array>();
    r.prompts.emplace_back(ids.Data(), ids.Data() + ids.ElementLength());
  }
  read_generation_fields(o, r);
  return r;
}

moe::SequenceRequest to_sequence_request(const Napi::Object& o) {
  moe::SequenceRequest r;
  Napi::Value p = field(o, "prompt");
  if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) fail(o.Env(), "native: prompt must be an Int32Array");
  Napi::Int32Array ids = p.As<Napi::Int32Array>();
  r.prompt.assign(ids.Data(), ids.Data() + ids.ElementLength());
  read_generation_fields(o, r);
  return r;
}

}  // namespace moe_addon
