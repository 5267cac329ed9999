// exports.calibrate: thin wrappers over moe::calibrate (native/src/calibrate/calibrate.h). Each
// measurement is a synchronous call of a few tenths of a second returning its samples (ms) as a
// Float64Array; the TypeScript driver (runtime/src/calibrate/) shows progress between calls, takes
// medians and writes the file. C++ exceptions become JS errors with the same message.
#include "calibrate_binding.h"

#include <memory>
#include <string>
#include <vector>

#include "../src/calibrate/calibrate.h"
#include "convert.h"

namespace moe_addon {

namespace {

Napi::Float64Array samples(Napi::Env env, const std::vector<double>& v) {
  Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = v[i];
  return a;
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("calibrate: ") + what + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

std::string str_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string("calibrate: ") + what + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string("calibrate: ") + what + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// Optional trailing (expertDtype, expertGroup) at argument i (issue 13); absent: bf16, group 64.
struct DtypeArgs {
  moe::quant::ExpertDType dtype = moe::quant::ExpertDType::BF16;
  int group = moe::quant::kDefaultInt4Group;
};
DtypeArgs dtype_args(const Napi::CallbackInfo& info, size_t i) {
  DtypeArgs a;
  if (info.Length() > i && !info[i].IsUndefined()) {
    const std::string dt = str_arg(info, i, "expertDtype");
    if (dt == "bf16") a.dtype = moe::quant::ExpertDType::BF16;
    else if (dt == "int8") a.dtype = moe::quant::ExpertDType::INT8;
    else if (dt == "int4") a.dtype = moe::quant::ExpertDType::INT4;
    else throw Napi::TypeError::New(info.Env(), "calibrate: expertDtype must be 'bf16', 'int8' or 'int4', not '" + dt + "'");
  }
  if (info.Length() > i + 1 && !info[i + 1].IsUndefined()) a.group = int_arg(info, i + 1, "expertGroup");
  return a;
}

moe::ModelConfig config_arg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "calibrate: expected a model config object");
  return to_config(info[0].As<Napi::Object>());
}

// Runs f, turning std::exception into a JS error with its message.
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// new CpuCalibrator(config, pool, isa, expertDtype?, expertGroup?)
class CpuCalibratorWrap : public Napi::ObjectWrap<CpuCalibratorWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CpuCalibrator",
                       {InstanceMethod<&CpuCalibratorWrap::isa>("isa"), InstanceMethod<&CpuCalibratorWrap::expert_ms>("expertMs"),
                        InstanceMethod<&CpuCalibratorWrap::expert_dtype>("expertDtype"),
                        InstanceMethod<&CpuCalibratorWrap::expert_bytes>("expertBytes")});
  }
  explicit CpuCalibratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CpuCalibratorWrap>(info) {
    const moe::ModelConfig c = config_arg(info);
    const int pool = int_arg(info, 1, "pool");
    const std::string isa = str_arg(info, 2, "isa");
    const DtypeArgs d = dtype_args(info, 3);
    impl_ = guarded(info.Env(), [&] { return std::make_unique<moe::calibrate::CpuCalibrator>(c, pool, isa, d.dtype, d.group); });
  }

 private:
  Napi::Value isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), impl_->isa_name()); }
  Napi::Value expert_dtype(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), moe::quant::expert_dtype_name(impl_->expert_dtype()));
  }
  Napi::Value expert_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(impl_->expert_bytes()));
  }
  // expertMs(tokens, threads, concurrent, iters, repeats)
  Napi::Value expert_ms(const Napi::CallbackInfo& info) {
    const int tokens = int_arg(info, 0, "tokens"), threads = int_arg(info, 1, "threads");
    const int concurrent = int_arg(info, 2, "concurrent"), iters = int_arg(info, 3, "iters"), repeats = int_arg(info, 4, "repeats");
    return samples(info.Env(), guarded(info.Env(), [&] { return impl_->expert_ms(tokens, threads, concurrent, iters, repeats); }));
  }
  std::unique_ptr<moe::calibrate::CpuCalibrator> impl_;
};

// new CudaCalibrator(config, expertPool, layerCopies, expertDtype?, expertGroup?)
class CudaCalibratorWrap : public Napi::ObjectWrap<CudaCalibratorWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CudaCalibrator",
                       {InstanceMethod<&CudaCalibratorWrap::device>("device"), InstanceMethod<&CudaCalibratorWrap::copy_ms>("copyMs"),
                        InstanceMethod<&CudaCalibratorWrap::expert_ms>("expertMs"), InstanceMethod<&CudaCalibratorWrap::launch_ms>("launchMs"),
                        InstanceMethod<&CudaCalibratorWrap::part_ms>("partMs"),
                        InstanceMethod<&CudaCalibratorWrap::layer_step_ms>("layerStepMs"),
                        InstanceMethod<&CudaCalibratorWrap::activation_ms>("activationMs"),
                        InstanceMethod<&CudaCalibratorWrap::copy_load>("copyLoad"),
                        InstanceMethod<&CudaCalibratorWrap::expert_dtype>("expertDtype"),
                        InstanceMethod<&CudaCalibratorWrap::expert_bytes>("expertBytes"),
                        InstanceMethod<&CudaCalibratorWrap::close>("close")});
  }
  explicit CudaCalibratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaCalibratorWrap>(info) {
    const moe::ModelConfig c = config_arg(info);
    const int pool = int_arg(info, 1, "expertPool"), copies = int_arg(info, 2, "layerCopies");
    const DtypeArgs d = dtype_args(info, 3);
    impl_ = guarded(info.Env(), [&] { return moe::calibrate::make_cuda_calibrator(c, pool, copies, d.dtype, d.group); });
  }

 private:
  moe::calibrate::CudaCalibrator& get(Napi::Env env) {
    if (!impl_) throw Napi::Error::New(env, "calibrate: the CUDA calibrator is closed");
    return *impl_;
  }
  Napi::Value device(const Napi::CallbackInfo& info) {
    const moe::calibrate::DeviceInfo d = guarded(info.Env(), [&] { return get(info.Env()).device(); });
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("name", d.name);
    o.Set("totalGiB", d.total_gib);
    o.Set("smCount", d.sm_count);
    o.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
    o.Set("asyncEngines", d.async_engines);
    o.Set("runtimeVersion", d.runtime_version);
    o.Set("driverVersion", d.driver_version);
    return o;
  }
  // copyMs(experts, oneCopy, streams, repeats)
  Napi::Value copy_ms(const Napi::CallbackInfo& info) {
    const int experts = int_arg(info, 0, "experts");
    const bool one = bool_arg(info, 1, "oneCopy");
    const int streams = int_arg(info, 2, "streams"), repeats = int_arg(info, 3, "repeats");
    return samples(info.Env(), guarded(info.Env(), [&] { return get(info.Env()).copy_ms(experts, one, streams, repeats); }));
  }
  // expertMs(kernel, tokens, repeats)
  Napi::Value expert_ms(const Napi::CallbackInfo& info) {
    const std::string kernel = str_arg(info, 0, "kernel");
    const int tokens = int_arg(info, 1, "tokens"), repeats = int_arg(info, 2, "repeats");
    return samples(info.Env(), guarded(info.Env(), [&] { return get(info.Env()).expert_ms(kernel, tokens, repeats); }));
  }
  // launchMs(experts, tokens, repeats)
  Napi::Value launch_ms(const Napi::CallbackInfo& info) {
    const int experts = int_arg(info, 0, "experts"), tokens = int_arg(info, 1, "tokens"), repeats = int_arg(info, 2, "repeats");
    return samples(info.Env(), guarded(info.Env(), [&] { return get(info.Env()).launch_ms(experts, tokens, repeats); }));
  }
  // partMs(part, batch, context, graph, repeats)
  Napi::Value part_ms(const Napi::CallbackInfo& info) {
    const std::string part = str_arg(info, 0, "part");
    const int batch = int_arg(info, 1, "batch"), context = int_arg(info, 2, "context");
    const bool graph = bool_arg(info, 3, "graph");
    const int repeats = int_arg(info, 4, "repeats");
    return samples(info.Env(), guarded(info.Env(), [&] { return get(info.Env()).part_ms(part, batch, context, graph, repeats); }));
  }
  // layerStepMs(batch, context, mode: 'graph' | 'eager' | 'eager-join', repeats)
  Napi::Value layer_step_ms(const Napi::CallbackInfo& info) {
    using Mode = moe::calibrate::CudaCalibrator::LayerStepMode;
    const int batch = int_arg(info, 0, "batch"), context = int_arg(info, 1, "context");
    const std::string name = str_arg(info, 2, "mode");
    const int repeats = int_arg(info, 3, "repeats");
    Mode mode;
    if (name == "graph") mode = Mode::Graph;
    else if (name == "eager") mode = Mode::Eager;
    else if (name == "eager-join") mode = Mode::EagerJoin;
    else throw Napi::TypeError::New(info.Env(), "calibrate: layerStepMs mode must be 'graph', 'eager' or 'eager-join', not '" + name + "'");
    return samples(info.Env(), guarded(info.Env(), [&] { return get(info.Env()).layer_step_ms(batch, context, mode, repeats); }));
  }
  // activationMs(tokens, repeats)
  Napi::Value activation_ms(const Napi::CallbackInfo& info) {
    const int tokens = int_arg(info, 0, "tokens"), repeats = int_arg(info, 1, "repeats");
    return samples(info.Env(), guarded(info.Env(), [&] { return get(info.Env()).activation_ms(tokens, repeats); }));
  }
  Napi::Value copy_load(const Napi::CallbackInfo& info) {
    const bool on = bool_arg(info, 0, "on");
    const double ms = guarded(info.Env(), [&] { return get(info.Env()).copy_load(on); });
    return Napi::Number::New(info.Env(), ms);
  }
  Napi::Value expert_dtype(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), moe::quant::expert_dtype_name(get(info.Env()).expert_dtype()));
  }
  Napi::Value expert_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(get(info.Env()).expert_bytes()));
  }
  Napi::Value close(const Napi::CallbackInfo& info) {
    impl_.reset();
    return info.Env().Undefined();
  }
  std::unique_ptr<moe::calibrate::CudaCalibrator> impl_;
};

Napi::Value cpu_info(const Napi::CallbackInfo& info) {
  const moe::calibrate::CpuInfo i = moe::calibrate::cpu_info();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("hardwareThreads", i.hardware_threads);
  o.Set("features", i.features);
  o.Set("bestIsa", i.best_isa);
  return o;
}

Napi::Value cuda_built(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), moe::calibrate::cuda_built()); }

}  // namespace

void register_calibrate(Napi::Env env, Napi::Object exports) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("cpuInfo", Napi::Function::New(env, cpu_info, "cpuInfo"));
  c.Set("cudaBuilt", Napi::Function::New(env, cuda_built, "cudaBuilt"));
  c.Set("CpuCalibrator", CpuCalibratorWrap::define(env));
  c.Set("CudaCalibrator", CudaCalibratorWrap::define(env));
  exports.Set("calibrate", c);
}

}  // namespace moe_addon
