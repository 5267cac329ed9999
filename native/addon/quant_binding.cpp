// exports.expertLayout and exports.quantFidelity: the quantized-expert format and its fidelity tool
// (native/include/moe/quant/expert_format.h, fidelity.h) for the TypeScript side.
//
//   expertLayout(dtype: 'bf16' | 'int8' | 'int4', hidden: number, dff: number, group?: number)
//     -> { dtype, hidden, dff, group, bytes, quantizer,
//          gate: { rows, cols, q, scale, zero }, up: {...}, down: {...} }
//     Byte offsets from the start of one expert blob, exactly moe::quant::expert_layout's (group
//     defaults to 64 and is 0 in the result for bf16 / int8). Synchronous; throws (naming the value)
//     for an unknown dtype or a shape the dtype does not allow.
//
//   quantFidelity({ config, tensors, dtype: 'bf16' | 'int8' | 'int4', group?: number (64),
//                   rows?: number (16), seed?: number (0),
//                   x?: Float32Array ([rows * hidden], or [MoE layers * rows * hidden]),
//                   threads?: number (0 = hardware threads), isa?: 'auto' | 'scalar' | 'avx2' | 'avx512' | 'avx512bf16' },
//                 onProgress?: (done: number, total: number) => void)
//     -> Promise<{ errors: Float64Array, layers: number, layerIds: Int32Array, experts: number }>
//     config / tensors as load() takes them (convert.cpp: to_config, to_tensors). For every routed
//     expert of every MoE layer, ||y_q - y_bf16|| / ||y_bf16|| over `rows` activation rows: x if given
//     (the same rows for every layer, or each MoE layer's own rows in model order when x holds them
//     all: real activations captured from a run), otherwise seeded random rows rmsnorm(N(0,1)) * the layer's
//     post_attention_layernorm. errors is layer-major: errors[li * experts + e] is expert e of MoE
//     layer layerIds[li] (layers = layerIds.length). Runs off the JS thread; onProgress is called on
//     the JS thread as experts finish (possibly coalesced: done only grows).
//
//   expertBlobs({ config, tensors, dtype: 'int8' | 'int4', group?: number (64),
//                 file?: { path, mode: 'read' | 'write', header: Buffer }, returnBlobs?: boolean (false) })
//     -> Promise<{ blobs: Buffer | null, bytes, quantizeSeconds,
//                  file: null | { path, read, written, rebuiltExperts, readSeconds, writeSeconds, warning } }>
//     The routed experts as the CUDA backend's host memory holds them (moe/quant/expert_blobs.h), built
//     without a GPU: quantized from the checkpoint, or read from / written to the quantized experts file
//     (moe/quant/quantized_file.h) exactly as a load does. blobs (only with returnBlobs) is layer-major,
//     blob (mi * E + e) at mi * E * bytes-per-blob. Used by `moe quantize-experts` and the tests.
#include "quant_binding.h"

#include <memory>
#include <string>
#include <vector>

#include "convert.h"
#include "moe/quant/expert_blobs.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/fidelity.h"
#include "moe/quant/quantize.h"
#include "moe/quant/quantized_file.h"
#include "moe/weights.h"

namespace moe_addon {

namespace {

[[noreturn]] void type_error(Napi::Env env, const std::string& what) { throw Napi::TypeError::New(env, what); }

int int_field(const Napi::Object& o, const char* name, int def, const char* where = "quantFidelity") {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return def;
  if (!v.IsNumber()) type_error(o.Env(), std::string(where) + ": " + name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int>(d))) type_error(o.Env(), std::string(where) + ": " + name + " must be an integer");
  return static_cast<int>(d);
}

moe::quant::ExpertDType dtype_value(Napi::Env env, const Napi::Value& v, const char* where) {
  if (!v.IsString()) type_error(env, std::string(where) + ": dtype must be a string ('bf16', 'int8' or 'int4')");
  try {
    return moe::quant::parse_expert_dtype(v.As<Napi::String>().Utf8Value());
  } catch (const std::exception& e) {
    type_error(env, std::string(where) + ": " + e.what());
  }
}

moe::LinearIsa isa_value(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return moe::LinearIsa::Auto;
  const std::string name = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  for (moe::LinearIsa isa : {moe::LinearIsa::Auto, moe::LinearIsa::Scalar, moe::LinearIsa::Avx2, moe::LinearIsa::Avx512, moe::LinearIsa::Avx512Bf16}) {
    if (name == moe::linear_isa_name(isa)) return isa;
  }
  type_error(env, "quantFidelity: isa must be one of auto, scalar, avx2, avx512, avx512bf16");
}

Napi::Object matrix_object(Napi::Env env, const moe::quant::MatrixLayout& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("rows", m.rows);
  o.Set("cols", m.cols);
  o.Set("q", static_cast<double>(m.q));
  o.Set("scale", static_cast<double>(m.scale));
  o.Set("zero", static_cast<double>(m.zero));
  return o;
}

Napi::Value expert_layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsNumber() || (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNumber())) {
    type_error(env, "expertLayout: expected (dtype, hidden, dff, group?)");
  }
  const moe::quant::ExpertDType dtype = dtype_value(env, info[0], "expertLayout");
  const int group = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : moe::quant::kDefaultInt4Group;
  moe::quant::ExpertLayout L;
  try {
    L = moe::quant::expert_layout(dtype, info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(), group);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("dtype", moe::quant::expert_dtype_name(L.dtype));
  o.Set("hidden", L.hidden);
  o.Set("dff", L.d_ff);
  o.Set("group", L.group);
  o.Set("bytes", static_cast<double>(L.bytes));
  o.Set("quantizer", moe::quant::quantizer_id(L.dtype));
  o.Set("gate", matrix_object(env, L.gate));
  o.Set("up", matrix_object(env, L.up));
  o.Set("down", matrix_object(env, L.down));
  return o;
}

struct Progress {
  int done = 0, total = 0;
};

class FidelityWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  FidelityWorker(Napi::Env env, moe::ModelConfig config, std::vector<moe::TensorSource> tensors, moe::quant::FidelityOptions options,
                 std::vector<float> x, Napi::Function on_progress)
      : Napi::AsyncProgressQueueWorker<Progress>(env, "moe.quantFidelity"), config_(std::move(config)), tensors_(std::move(tensors)),
        options_(std::move(options)), x_(std::move(x)), deferred_(Napi::Promise::Deferred::New(env)) {
    if (!on_progress.IsEmpty()) on_progress_ = Napi::Persistent(on_progress);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      std::unique_ptr<moe::WeightStore> store = moe::WeightStore::open(config_, tensors_);
      if (!x_.empty()) options_.x = x_.data();
      if (!on_progress_.IsEmpty()) {
        options_.progress = [&progress](int done, int total) {
          const Progress p{done, total};
          progress.Send(&p, 1);
        };
      }
      result_ = moe::quant::expert_fidelity(config_, store->weights(), options_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnProgress(const Progress* data, size_t count) override {
    if (on_progress_.IsEmpty() || count == 0) return;
    Napi::HandleScope scope(Env());
    const Progress& p = data[count - 1];
    on_progress_.Call({Napi::Number::New(Env(), p.done), Napi::Number::New(Env(), p.total)});
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Float64Array errors = Napi::Float64Array::New(env, result_.errors.size());
    for (size_t i = 0; i < result_.errors.size(); ++i) errors[i] = result_.errors[i];
    Napi::Int32Array ids = Napi::Int32Array::New(env, result_.layers.size());
    for (size_t i = 0; i < result_.layers.size(); ++i) ids[i] = result_.layers[i];
    o.Set("errors", errors);
    o.Set("layers", static_cast<double>(result_.layers.size()));
    o.Set("layerIds", ids);
    o.Set("experts", result_.experts);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  moe::ModelConfig config_;
  std::vector<moe::TensorSource> tensors_;
  moe::quant::FidelityOptions options_;
  std::vector<float> x_;
  Napi::FunctionReference on_progress_;
  moe::quant::FidelityResult result_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value quant_fidelity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) type_error(env, "quantFidelity: expected ({config, tensors, dtype, ...}, onProgress?)");
  Napi::Object spec = info[0].As<Napi::Object>();
  if (!spec.Get("config").IsObject() || !spec.Get("tensors").IsArray()) {
    type_error(env, "quantFidelity: expected {config: object, tensors: array, dtype: string, ...}");
  }
  Napi::Function on_progress;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsFunction()) type_error(env, "quantFidelity: onProgress must be a function");
    on_progress = info[1].As<Napi::Function>();
  }
  moe::ModelConfig config = to_config(spec.Get("config").As<Napi::Object>());
  std::vector<moe::TensorSource> tensors = to_tensors(spec.Get("tensors").As<Napi::Array>());
  moe::quant::FidelityOptions o;
  o.dtype = dtype_value(env, spec.Get("dtype"), "quantFidelity");
  o.group = int_field(spec, "group", moe::quant::kDefaultInt4Group);
  o.rows = int_field(spec, "rows", 16);
  o.threads = int_field(spec, "threads", 0);
  const int seed = int_field(spec, "seed", 0);
  if (seed < 0) type_error(env, "quantFidelity: seed must be >= 0");
  o.seed = static_cast<uint64_t>(seed);
  o.isa = isa_value(env, spec.Get("isa"));
  std::vector<float> x;
  Napi::Value xv = spec.Get("x");
  if (!xv.IsUndefined()) {
    if (!xv.IsTypedArray() || xv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      type_error(env, "quantFidelity: x must be a Float32Array");
    }
    Napi::Float32Array xa = xv.As<Napi::Float32Array>();
    const size_t want = static_cast<size_t>(std::max(0, o.rows)) * static_cast<size_t>(std::max(0, config.hidden_size));
    const size_t moe_layers = static_cast<size_t>(std::max(0, config.num_hidden_layers - config.first_k_dense_replace));
    if (moe_layers > 1 && xa.ElementLength() == moe_layers * want) o.x_layers = static_cast<int>(moe_layers);
    else if (xa.ElementLength() != want) {
      type_error(env, "quantFidelity: x has " + std::to_string(xa.ElementLength()) + " values, expected rows * hidden_size = " + std::to_string(want) +
                          " (the same rows for every layer) or MoE layers * rows * hidden_size = " + std::to_string(moe_layers * want));
    }
    x.assign(xa.Data(), xa.Data() + xa.ElementLength());
  }
  auto* worker = new FidelityWorker(env, std::move(config), std::move(tensors), std::move(o), std::move(x), on_progress);
  worker->Queue();
  return worker->promise();
}

class ExpertBlobsWorker : public Napi::AsyncWorker {
 public:
  ExpertBlobsWorker(Napi::Env env, moe::ModelConfig config, std::vector<moe::TensorSource> tensors, moe::quant::ExpertLayout layout,
                    bool has_file, moe::quant::QuantizedFileSpec file, bool return_blobs)
      : Napi::AsyncWorker(env, "moe.expertBlobs"), config_(std::move(config)), tensors_(std::move(tensors)), layout_(layout), has_file_(has_file),
        file_(std::move(file)), return_blobs_(return_blobs), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::unique_ptr<moe::WeightStore> store = moe::WeightStore::open(config_, tensors_);
      const std::vector<int> moe_layers = moe::quant::moe_layer_ids(store->weights());
      blobs_.assign(moe::quant::expert_blobs_bytes(config_, moe_layers, layout_), 0);
      if (has_file_) result_ = moe::quant::fill_expert_blobs_with_file(config_, store->weights(), moe_layers, layout_, blobs_.data(), file_, quantize_seconds_);
      else quantize_seconds_ = moe::quant::fill_expert_blobs(config_, store->weights(), moe_layers, layout_, blobs_.data());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", static_cast<double>(blobs_.size()));
    o.Set("blobs", return_blobs_ ? Napi::Value(Napi::Buffer<uint8_t>::Copy(env, blobs_.data(), blobs_.size())) : env.Null());
    o.Set("quantizeSeconds", quantize_seconds_);
    if (has_file_) {
      Napi::Object f = Napi::Object::New(env);
      f.Set("path", result_.path);
      f.Set("read", result_.read);
      f.Set("written", result_.written);
      f.Set("rebuiltExperts", static_cast<double>(result_.rebuilt));
      f.Set("readSeconds", result_.read_seconds);
      f.Set("writeSeconds", result_.write_seconds);
      f.Set("warning", result_.warning);
      o.Set("file", f);
    } else {
      o.Set("file", env.Null());
    }
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  moe::ModelConfig config_;
  std::vector<moe::TensorSource> tensors_;
  moe::quant::ExpertLayout layout_;
  bool has_file_;
  moe::quant::QuantizedFileSpec file_;
  bool return_blobs_;
  std::vector<uint8_t> blobs_;
  double quantize_seconds_ = 0;
  moe::quant::QuantizedFileResult result_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value expert_blobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) type_error(env, "expertBlobs: expected ({config, tensors, dtype, group?, file?, returnBlobs?})");
  Napi::Object spec = info[0].As<Napi::Object>();
  if (!spec.Get("config").IsObject() || !spec.Get("tensors").IsArray()) type_error(env, "expertBlobs: expected {config: object, tensors: array, dtype: string, ...}");
  moe::ModelConfig config = to_config(spec.Get("config").As<Napi::Object>());
  std::vector<moe::TensorSource> tensors = to_tensors(spec.Get("tensors").As<Napi::Array>());
  const moe::quant::ExpertDType dtype = dtype_value(env, spec.Get("dtype"), "expertBlobs");
  if (dtype == moe::quant::ExpertDType::BF16) type_error(env, "expertBlobs: dtype must be 'int8' or 'int4' (bf16 experts are the checkpoint's weights)");
  moe::quant::ExpertLayout layout;
  try {
    layout = moe::quant::expert_layout(dtype, config.hidden_size, config.moe_intermediate_size, int_field(spec, "group", moe::quant::kDefaultInt4Group, "expertBlobs"));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("expertBlobs: ") + e.what());
  }
  Napi::Value fv = spec.Get("file");
  const bool has_file = !fv.IsUndefined() && !fv.IsNull();
  moe::quant::QuantizedFileSpec file;
  if (has_file) file = to_quantized_file(fv);
  Napi::Value rv = spec.Get("returnBlobs");
  if (!rv.IsUndefined() && !rv.IsBoolean()) type_error(env, "expertBlobs: returnBlobs must be a boolean");
  auto* worker = new ExpertBlobsWorker(env, std::move(config), std::move(tensors), layout, has_file, std::move(file), rv.IsBoolean() && rv.As<Napi::Boolean>().Value());
  worker->Queue();
  return worker->promise();
}

}  // namespace

void register_quant(Napi::Env env, Napi::Object exports) {
  exports.Set("expertLayout", Napi::Function::New(env, expert_layout, "expertLayout"));
  exports.Set("quantFidelity", Napi::Function::New(env, quant_fidelity, "quantFidelity"));
  exports.Set("expertBlobs", Napi::Function::New(env, expert_blobs, "expertBlobs"));
}

}  // namespace moe_addon
