// The Node binding: a thin node-addon-api layer over moe::Engine. Loading, opening slots, prefill and
// decode steps run on libuv's worker pool (Napi::AsyncWorker) and settle promises; C++ exceptions become
// rejected promises or thrown JS errors (the TypeScript layer rethrows them with a JS stack).
// Nothing here calls exit() or abort(). One operation at a time per engine: a second is refused.
#include <napi.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "calibrate_binding.h"
#include "convert.h"
#include "offload_binding.h"
#include "quant_binding.h"
#include "moe/cpu_features.h"
#include "moe/engine.h"
#include "moe/kernels.h"

namespace moe_addon {

namespace {

struct Capture {
  std::string name;
  int layer;
  int rows, cols;
  std::vector<float> data;
};

Napi::Object step_result(Napi::Env env, const moe::StepOutput& out) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Int32Array tokens = Napi::Int32Array::New(env, out.token.size());
  Napi::Int8Array finish = Napi::Int8Array::New(env, out.finish.size());
  Napi::Int32Array seq = Napi::Int32Array::New(env, out.logits_seq.size());
  for (size_t i = 0; i < out.token.size(); ++i) tokens[i] = out.token[i];
  for (size_t i = 0; i < out.finish.size(); ++i) finish[i] = static_cast<int8_t>(out.finish[i]);
  for (size_t i = 0; i < out.logits_seq.size(); ++i) seq[i] = out.logits_seq[i];
  o.Set("tokens", tokens);
  o.Set("finish", finish);
  o.Set("logitsSeq", seq);
  return o;
}

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {InstanceMethod<&NativeEngine::begin>("begin"), InstanceMethod<&NativeEngine::step>("step"),
                        InstanceMethod<&NativeEngine::logits>("logits"), InstanceMethod<&NativeEngine::info>("info"),
                        InstanceMethod<&NativeEngine::set_keep_logits>("setKeepLogits"),
                        InstanceMethod<&NativeEngine::set_debug_capture>("setDebugCapture"),
                        InstanceMethod<&NativeEngine::take_debug_capture>("takeDebugCapture"),
                        InstanceMethod<&NativeEngine::set_offload>("setOffload"),
                        InstanceMethod<&NativeEngine::take_record>("takeRecord"),
                        InstanceMethod<&NativeEngine::take_miss_log>("takeMissLog"),
                        InstanceMethod<&NativeEngine::cache_stats>("cacheStats"),
                        InstanceMethod<&NativeEngine::score>("score"),
                        InstanceMethod<&NativeEngine::open_slots>("openSlots"),
                        InstanceMethod<&NativeEngine::add_sequence>("addSequence"),
                        InstanceMethod<&NativeEngine::remove_sequence>("removeSequence"),
                        InstanceMethod<&NativeEngine::close>("close")});
  }

  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NativeEngine is created by load(), not with new");
    }
    engine_.reset(info[0].As<Napi::External<moe::Engine>>().Data());
  }

  moe::Engine& engine(Napi::Env env) {
    if (!engine_) throw Napi::Error::New(env, "engine is closed");
    if (busy_) throw Napi::Error::New(env, "engine is busy: wait for the previous begin()/step() to settle");
    return *engine_;
  }

  bool busy_ = false;
  std::unique_ptr<moe::Engine> engine_;
  std::vector<Capture> captures_;
  // Offloading runtime (issue 6): when set, begin/step go through its session. Declared after
  // engine_ so that it is destroyed first.
  std::unique_ptr<OffloadHolder> offload_;

  // Continuous batching (openSlots since the last begin/score): slots, and the trace sequence each
  // slot's sequence replays / is recorded as (arrival order unless addSequence names one).
  bool continuous_ = false;
  std::vector<int32_t> trace_seq_;
  int32_t next_trace_seq_ = 0;

  moe::StepOutput run(const moe::GenerationRequest* request) {
    if (request) continuous_ = false;
    if (continuous_) return offload_ ? continuous_offload_step() : engine_->step();
    if (offload_) return request ? offload_->session->begin(*request) : offload_->session->step();
    return request ? engine_->begin(*request) : engine_->step();
  }

  // The OffloadSession mirrors begin()'s one-batch layout only; with slots joining and leaving the
  // controller is told each forward's rows here, from the engine's own next batch. A forward with any
  // prompt rows is a prefill (phase 0: the cache steps through its positions), otherwise a decode.
  moe::StepOutput continuous_offload_step() {
    const moe::StepBatch b = engine_->next_batch();
    std::vector<int32_t> seq(b.seq.size());
    for (size_t i = 0; i < b.seq.size(); ++i) seq[i] = trace_seq_.at(static_cast<size_t>(b.seq[i]));
    moe::offload::OffloadController& c = offload_->session->controller();
    c.begin_forward(engine_->next_has_prefill() ? 0 : 1, seq, b.pos, b.tokens);
    moe::StepOutput out;
    try {
      out = engine_->step();
    } catch (...) {
      c.abort_forward();
      throw;
    }
    c.end_forward();
    return out;
  }

 private:
  // spec object (see offload_binding.h) or null to detach.
  Napi::Value set_offload(const Napi::CallbackInfo& info) {
    moe::Engine& e = engine(info.Env());
    captures_.clear();
    offload_.reset();
    e.set_debug_hook(nullptr);
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) return info.Env().Undefined();
    if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "setOffload: expected a spec object or null");
    try {
      offload_ = make_offload(e, info[0].As<Napi::Object>());
    } catch (const std::exception& err) {
      throw Napi::Error::New(info.Env(), err.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value take_record(const Napi::CallbackInfo& info) {
    engine(info.Env());
    if (!offload_) throw Napi::Error::New(info.Env(), "takeRecord: no offloading session (setOffload first)");
    return take_recorded(info.Env(), offload_->session->controller());
  }

  Napi::Value take_miss_log(const Napi::CallbackInfo& info) {
    engine(info.Env());
    if (!offload_) throw Napi::Error::New(info.Env(), "takeMissLog: no offloading session (setOffload first)");
    return moe_addon::take_miss_log(info.Env(), offload_->session->controller());
  }

  Napi::Value cache_stats(const Napi::CallbackInfo& info) {
    engine(info.Env());
    if (!offload_) return info.Env().Null();
    return moe_addon::cache_stats(info.Env(), offload_->session->controller());
  }

  void install_hook(moe::Engine& e, moe::DebugHook hook) {
    if (offload_) offload_->session->set_user_hook(std::move(hook));
    else e.set_debug_hook(std::move(hook));
  }

  Napi::Value begin(const Napi::CallbackInfo& info);
  Napi::Value step(const Napi::CallbackInfo& info);
  Napi::Value score(const Napi::CallbackInfo& info);
  Napi::Value open_slots(const Napi::CallbackInfo& info);

  // addSequence({prompt, maxNewTokens, greedy, temperature, topP, seed, stopOnEos, traceSequence?}) -> slot.
  // Cheap (the prompt is prefilled by the next step()), so it runs on the JS thread.
  Napi::Value add_sequence(const Napi::CallbackInfo& info) {
    moe::Engine& e = engine(info.Env());
    if (!continuous_) throw Napi::Error::New(info.Env(), "addSequence: no slots open (openSlots first)");
    if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "addSequence: expected a request object");
    Napi::Object o = info[0].As<Napi::Object>();
    const moe::SequenceRequest r = to_sequence_request(o);
    int32_t trace = next_trace_seq_;
    const Napi::Value t = o.Get("traceSequence");
    if (!t.IsUndefined()) {
      if (!t.IsNumber() || t.As<Napi::Number>().DoubleValue() < 0 || t.As<Napi::Number>().DoubleValue() > 2147483647.0) {
        throw Napi::TypeError::New(info.Env(), "addSequence: traceSequence must be a non-negative 32-bit integer");
      }
      trace = t.As<Napi::Number>().Int32Value();
    }
    int slot = -1;
    try {
      slot = e.add_sequence(r);
    } catch (const std::exception& err) {
      throw Napi::Error::New(info.Env(), err.what());
    }
    trace_seq_.at(static_cast<size_t>(slot)) = trace;
    next_trace_seq_ = std::max(next_trace_seq_, trace + 1);
    return Napi::Number::New(info.Env(), slot);
  }

  Napi::Value remove_sequence(const Napi::CallbackInfo& info) {
    moe::Engine& e = engine(info.Env());
    if (!continuous_) throw Napi::Error::New(info.Env(), "removeSequence: no slots open (openSlots first)");
    if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "removeSequence: expected a slot number");
    try {
      e.remove_sequence(info[0].As<Napi::Number>().Int32Value());
    } catch (const std::exception& err) {
      throw Napi::Error::New(info.Env(), err.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value logits(const Napi::CallbackInfo& info) {
    try {
      const std::vector<float>& l = engine(info.Env()).last_logits();
      Napi::Float32Array out = Napi::Float32Array::New(info.Env(), l.size());
      std::copy(l.begin(), l.end(), out.Data());
      return out;
    } catch (const std::exception& err) {
      throw Napi::Error::New(info.Env(), err.what());
    }
  }

  // setKeepLogits(keep: boolean): whether begin()/step() bring the logits to the host (Engine::set_keep_logits).
  Napi::Value set_keep_logits(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "setKeepLogits(keep): keep must be a boolean");
    engine(info.Env()).set_keep_logits(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  }

  Napi::Value info(const Napi::CallbackInfo& info) {
    moe::Engine& e = engine(info.Env());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("backend", e.backend_name());
    o.Set("weightBytes", static_cast<double>(e.weight_bytes()));
    o.Set("cpuFeatures", moe::cpu_features().describe());
    o.Set("linearKernel", moe::linear_isa_name(moe::best_exact_isa()));
    o.Set("device", e.device_info());
    return o;
  }

  // names: array of intermediate names to keep ("*" for all), or null to stop capturing.
  Napi::Value set_debug_capture(const Napi::CallbackInfo& info) {
    moe::Engine& e = engine(info.Env());
    captures_.clear();
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
      install_hook(e, nullptr);
      return info.Env().Undefined();
    }
    if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "setDebugCapture: expected an array of names or null");
    std::set<std::string> names;
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) names.insert(a.Get(i).ToString().Utf8Value());
    install_hook(e, [this, names](const char* name, int layer, const float* data, int rows, int cols) {
      if (!names.count("*") && !names.count(name)) return;
      captures_.push_back(Capture{name, layer, rows, cols, std::vector<float>(data, data + static_cast<size_t>(rows) * cols)});
    });
    return info.Env().Undefined();
  }

  Napi::Value take_debug_capture(const Napi::CallbackInfo& info) {
    engine(info.Env());
    Napi::Array out = Napi::Array::New(info.Env(), captures_.size());
    for (size_t i = 0; i < captures_.size(); ++i) {
      const Capture& c = captures_[i];
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("name", c.name);
      o.Set("layer", c.layer);
      o.Set("rows", c.rows);
      o.Set("cols", c.cols);
      Napi::Float32Array d = Napi::Float32Array::New(info.Env(), c.data.size());
      std::copy(c.data.begin(), c.data.end(), d.Data());
      o.Set("data", d);
      out.Set(static_cast<uint32_t>(i), o);
    }
    captures_.clear();
    return out;
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    if (busy_) throw Napi::Error::New(info.Env(), "engine is busy: close it after the pending begin()/step() settles");
    offload_.reset();
    engine_.reset();
    captures_.clear();
    return info.Env().Undefined();
  }
};

// begin()/step() off the JS thread.
class StepWorker : public Napi::AsyncWorker {
 public:
  StepWorker(Napi::Env env, NativeEngine* owner, Napi::Object self, std::unique_ptr<moe::GenerationRequest> request)
      : Napi::AsyncWorker(env, "moe.step"), owner_(owner), self_(Napi::Persistent(self)), request_(std::move(request)),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      out_ = owner_->run(request_.get());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    owner_->busy_ = false;
    deferred_.Resolve(step_result(Env(), out_));
  }
  void OnError(const Napi::Error& e) override {
    owner_->busy_ = false;
    deferred_.Reject(e.Value());
  }

 private:
  NativeEngine* owner_;
  Napi::ObjectReference self_;  // keeps the engine alive while the work runs
  std::unique_ptr<moe::GenerationRequest> request_;
  Napi::Promise::Deferred deferred_;
  moe::StepOutput out_;
};

Napi::Value NativeEngine::begin(const Napi::CallbackInfo& info) {
  engine(info.Env());
  if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "begin: expected a request object");
  auto request = std::make_unique<moe::GenerationRequest>(to_request(info[0].As<Napi::Object>()));
  auto* worker = new StepWorker(info.Env(), this, info.This().As<Napi::Object>(), std::move(request));
  busy_ = true;
  worker->Queue();
  return worker->promise();
}

Napi::Value NativeEngine::step(const Napi::CallbackInfo& info) {
  engine(info.Env());
  auto* worker = new StepWorker(info.Env(), this, info.This().As<Napi::Object>(), nullptr);
  busy_ = true;
  worker->Queue();
  return worker->promise();
}

// score(request) -> Promise<void>: teacher-forced logits of every position of request.prompts (read
// them with logits()), off the JS thread; request.prefillTokens > 0: that many by prefill, the rest
// by decode steps (Engine::score).
class ScoreWorker : public Napi::AsyncWorker {
 public:
  ScoreWorker(Napi::Env env, NativeEngine* owner, Napi::Object self, moe::GenerationRequest request, int prefill_tokens)
      : Napi::AsyncWorker(env, "moe.score"), owner_(owner), self_(Napi::Persistent(self)), request_(std::move(request)),
        prefill_tokens_(prefill_tokens), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      if (owner_->offload_) owner_->offload_->session->score(request_.prompts, prefill_tokens_);
      else owner_->engine_->score(request_.prompts, prefill_tokens_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    owner_->busy_ = false;
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    owner_->busy_ = false;
    deferred_.Reject(e.Value());
  }

 private:
  NativeEngine* owner_;
  Napi::ObjectReference self_;
  moe::GenerationRequest request_;
  int prefill_tokens_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value NativeEngine::score(const Napi::CallbackInfo& info) {
  engine(info.Env());
  if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "score: expected a request object");
  Napi::Object req = info[0].As<Napi::Object>();
  continuous_ = false;
  const Napi::Value pt = req.Get("prefillTokens");
  const int prefill_tokens = pt.IsNumber() ? pt.As<Napi::Number>().Int32Value() : 0;
  auto* worker = new ScoreWorker(info.Env(), this, info.This().As<Napi::Object>(), to_request(req), prefill_tokens);
  busy_ = true;
  worker->Queue();
  return worker->promise();
}

// openSlots(slots, capacity) -> Promise<void>: Engine::open_slots off the JS thread (the KV caches of
// every slot are allocated here: gigabytes for the full model).
class OpenSlotsWorker : public Napi::AsyncWorker {
 public:
  OpenSlotsWorker(Napi::Env env, NativeEngine* owner, Napi::Object self, int slots, int capacity)
      : Napi::AsyncWorker(env, "moe.openSlots"), owner_(owner), self_(Napi::Persistent(self)), slots_(slots), capacity_(capacity),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      owner_->engine_->open_slots(slots_, capacity_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    owner_->busy_ = false;
    owner_->continuous_ = true;
    owner_->trace_seq_.assign(static_cast<size_t>(slots_), -1);
    owner_->next_trace_seq_ = 0;
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    owner_->busy_ = false;
    owner_->continuous_ = false;
    deferred_.Reject(e.Value());
  }

 private:
  NativeEngine* owner_;
  Napi::ObjectReference self_;
  int slots_, capacity_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value NativeEngine::open_slots(const Napi::CallbackInfo& info) {
  engine(info.Env());
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "openSlots: expected (slots, capacity)");
  continuous_ = false;
  auto* worker = new OpenSlotsWorker(info.Env(), this, info.This().As<Napi::Object>(), info[0].As<Napi::Number>().Int32Value(),
                                     info[1].As<Napi::Number>().Int32Value());
  busy_ = true;
  worker->Queue();
  return worker->promise();
}

// load({config, tensors, options}) -> Promise<NativeEngine>: maps and checks the weights off the JS thread.
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, moe::ModelConfig config, std::vector<moe::TensorSource> tensors, moe::EngineOptions options)
      : Napi::AsyncWorker(env, "moe.load"), config_(std::move(config)), tensors_(std::move(tensors)), options_(std::move(options)),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      engine_ = std::make_unique<moe::Engine>(config_, tensors_, options_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::FunctionReference* ctor = Env().GetInstanceData<Napi::FunctionReference>();
    Napi::Object obj = ctor->New({Napi::External<moe::Engine>::New(Env(), engine_.release())});
    deferred_.Resolve(obj);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  moe::ModelConfig config_;
  std::vector<moe::TensorSource> tensors_;
  moe::EngineOptions options_;
  std::unique_ptr<moe::Engine> engine_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "load: expected {config, tensors, options}");
  Napi::Object spec = info[0].As<Napi::Object>();
  if (!spec.Get("config").IsObject() || !spec.Get("tensors").IsArray() || !spec.Get("options").IsObject()) {
    throw Napi::TypeError::New(env, "load: expected {config: object, tensors: array, options: object}");
  }
  auto* worker = new LoadWorker(env, to_config(spec.Get("config").As<Napi::Object>()), to_tensors(spec.Get("tensors").As<Napi::Array>()),
                                to_engine_options(spec.Get("options").As<Napi::Object>()));
  worker->Queue();
  return worker->promise();
}

Napi::Value cpu_features(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), moe::cpu_features().describe()); }

Napi::Object init_exports(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeEngine::define(env);
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(ctor)));
  exports.Set("NativeEngine", ctor);
  exports.Set("load", Napi::Function::New(env, load, "load"));
  exports.Set("cpuFeatures", Napi::Function::New(env, cpu_features, "cpuFeatures"));
  register_calibrate(env, exports);
  register_quant(env, exports);
  return exports;
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) { return init_exports(env, exports); }

}  // namespace moe_addon

static Napi::Object InitMoeNative(Napi::Env env, Napi::Object exports) { return moe_addon::init(env, exports); }

NODE_API_MODULE(moe_native, InitMoeNative)
