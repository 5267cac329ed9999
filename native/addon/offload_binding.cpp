#include "offload_binding.h"

#include <memory>
#include <string>

#include "convert.h"
#include "moe/error.h"

namespace moe_addon {

namespace {

template <typename T, typename Arr>
std::vector<T> to_vector(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw moe::Error(std::string("offload spec: ") + what + " must be a typed array");
  Arr a = v.As<Arr>();
  return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

template <typename Arr, typename T>
Arr to_typed(Napi::Env env, const std::vector<T>& v) {
  Arr a = Arr::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

int int_of(const Napi::Object& o, const char* key, const char* what) {
  if (!o.Get(key).IsNumber()) throw moe::Error(std::string("offload spec: ") + what + "." + key + " must be a number");
  return o.Get(key).As<Napi::Number>().Int32Value();
}

// prefetch.predictor: the exported predictor as runtime/src/offload/prefetch-options.ts hands it over
// ({moeLayers, numExperts, topK, lookahead, budget, minLogit, blocks, layers: [{in, out, weightT, bias}]}).
moe::offload::PredictorModel to_predictor(const Napi::Value& v) {
  if (!v.IsObject()) throw moe::Error("offload spec: prefetch.predictor must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  moe::offload::PredictorModel m;
  m.moe_layers = int_of(o, "moeLayers", "prefetch.predictor");
  m.num_experts = int_of(o, "numExperts", "prefetch.predictor");
  m.top_k = int_of(o, "topK", "prefetch.predictor");
  m.lookahead = int_of(o, "lookahead", "prefetch.predictor");
  m.budget = int_of(o, "budget", "prefetch.predictor");
  if (o.Get("minLogit").IsNumber()) m.min_logit = o.Get("minLogit").As<Napi::Number>().DoubleValue();
  if (!o.Get("blocks").IsArray() || !o.Get("layers").IsArray()) throw moe::Error("offload spec: prefetch.predictor needs blocks and layers arrays");
  const Napi::Array blocks = o.Get("blocks").As<Napi::Array>();
  for (uint32_t i = 0; i < blocks.Length(); ++i) {
    const Napi::Object b = blocks.Get(i).As<Napi::Object>();
    const std::string kind = b.Get("kind").ToString().Utf8Value();
    moe::offload::PredictorBlock pb;
    if (kind == "layer") pb.kind = moe::offload::PredictorBlock::Kind::Layer;
    else if (kind == "routing") {
      pb.layer_offset = int_of(b, "layerOffset", "prefetch.predictor.blocks[i]");
      pb.token_offset = int_of(b, "tokenOffset", "prefetch.predictor.blocks[i]");
      pb.per_layer = b.Get("perLayer").ToBoolean();
    } else throw moe::Error("option --predictor: the runtime's predictor takes routing and layer feature blocks, not '" + kind + "'");
    m.blocks.push_back(pb);
  }
  const Napi::Array layers = o.Get("layers").As<Napi::Array>();
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    const Napi::Object l = layers.Get(i).As<Napi::Object>();
    moe::offload::PredictorLayer pl;
    pl.in = int_of(l, "in", "prefetch.predictor.layers[i]");
    pl.out = int_of(l, "out", "prefetch.predictor.layers[i]");
    pl.weight_t = to_vector<float, Napi::Float32Array>(l.Get("weightT"), "prefetch.predictor.layers[i].weightT");
    pl.bias = to_vector<float, Napi::Float32Array>(l.Get("bias"), "prefetch.predictor.layers[i].bias");
    m.layers.push_back(std::move(pl));
  }
  return m;
}

}  // namespace

std::unique_ptr<OffloadHolder> make_offload(moe::Engine& engine, const Napi::Object& spec) {
  const moe::ModelConfig& c = engine.config();
  moe::offload::OffloadOptions o;
  o.num_layers = c.num_hidden_layers;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    if (c.is_moe_layer(l)) o.moe_layers.push_back(l);
  }
  o.num_experts = c.n_routed_experts;
  o.k = c.num_experts_per_tok;
  o.norm_topk_prob = c.norm_topk_prob;
  o.routed_scaling_factor = c.routed_scaling_factor;
  auto holder = std::make_unique<OffloadHolder>();
  if (spec.Get("cache").IsObject()) {
    Napi::Object cache = spec.Get("cache").As<Napi::Object>();
    o.use_cache = true;
    o.cache.slots_per_layer = cache.Get("slotsPerLayer").As<Napi::Number>().Int32Value();
    o.cache.policy = moe::offload::parse_policy(cache.Get("policy").As<Napi::String>().Utf8Value());
    o.cache.lfru_decay = cache.Get("lfruDecay").As<Napi::Number>().DoubleValue();
    if (cache.Get("pinned").IsArray()) {
      Napi::Array p = cache.Get("pinned").As<Napi::Array>();
      for (uint32_t l = 0; l < p.Length(); ++l) {
        const std::vector<int32_t> ids = to_vector<int32_t, Napi::Int32Array>(p.Get(l), "cache.pinned[l]");
        o.cache.pinned.emplace_back(ids.begin(), ids.end());
      }
    }
    if (cache.Get("plannedOffsets").IsTypedArray()) {
      o.planned_offsets = to_vector<int32_t, Napi::Int32Array>(cache.Get("plannedOffsets"), "cache.plannedOffsets");
      o.planned_experts = to_vector<int32_t, Napi::Int32Array>(cache.Get("plannedExperts"), "cache.plannedExperts");
    }
  }
  if (spec.Get("replay").IsArray()) {
    Napi::Array r = spec.Get("replay").As<Napi::Array>();
    for (uint32_t g = 0; g < r.Length(); ++g) {
      Napi::Object s = r.Get(g).As<Napi::Object>();
      moe::offload::ReplaySequence seq;
      seq.length = s.Get("length").As<Napi::Number>().Int32Value();
      seq.experts = to_vector<int32_t, Napi::Int32Array>(s.Get("experts"), "replay[g].experts");
      seq.weights = to_vector<float, Napi::Float32Array>(s.Get("weights"), "replay[g].weights");
      o.replay.push_back(std::move(seq));
    }
  }
  if (spec.Get("residentSteps").IsBoolean()) o.resident_steps = spec.Get("residentSteps").As<Napi::Boolean>().Value();
  if (spec.Get("miss").IsObject()) {
    Napi::Object m = spec.Get("miss").As<Napi::Object>();
    moe::offload::MissPolicy& p = o.miss;
    p.mode = moe::offload::parse_miss_mode(m.Get("mode").As<Napi::String>().Utf8Value());
    p.workers = m.Get("workers").As<Napi::Number>().Int32Value();
    p.threads_per_worker = m.Get("threadsPerWorker").As<Napi::Number>().Int32Value();
    p.log = m.Get("log").ToBoolean();
    if (m.Get("spinUs").IsNumber()) p.spin_us = m.Get("spinUs").As<Napi::Number>().Int32Value();
    if (m.Get("rounding").IsString()) p.rounding = moe::offload::parse_cpu_expert_rounding(m.Get("rounding").As<Napi::String>().Utf8Value());
    if (m.Get("fill").IsBoolean()) p.fill = m.Get("fill").As<Napi::Boolean>().Value();
    if (m.Get("admit").IsBoolean()) p.admit = m.Get("admit").As<Napi::Boolean>().Value();
    if (m.Get("correctCpu").IsBoolean()) p.correct_cpu = m.Get("correctCpu").As<Napi::Boolean>().Value();
    p.costs.copy_ms = m.Get("copyMs").As<Napi::Number>().DoubleValue();
    p.costs.activation_copy_ms = m.Get("activationCopyMs").As<Napi::Number>().DoubleValue();
    auto curve = [&](const char* name) {
      const std::vector<double> flat = to_vector<double, Napi::Float64Array>(m.Get(name), name);
      if (flat.empty() || flat.size() % 2 != 0) throw moe::Error(std::string("offload spec: miss.") + name + " must hold (tokens, ms) pairs");
      moe::offload::TokenCurve c;
      for (size_t i = 0; i < flat.size(); i += 2) c.emplace_back(flat[i], flat[i + 1]);
      return c;
    };
    p.costs.gpu_expert_ms = curve("gpuExpertMs");
    p.costs.cpu_expert_ms = curve("cpuExpertMs");
    if (p.workers < 1 || p.threads_per_worker < 1) throw moe::Error("offload spec: miss.workers and miss.threadsPerWorker must be >= 1");
  }
  if (spec.Get("prefetch").IsObject()) {
    // runtime/src/offload/prefetch-options.ts resolved and checked it (source, lookahead, table).
    Napi::Object pf = spec.Get("prefetch").As<Napi::Object>();
    moe::offload::PrefetchOptions& p = o.prefetch;
    p.name = pf.Get("name").As<Napi::String>().Utf8Value();
    const std::string src = pf.Get("source").As<Napi::String>().Utf8Value();
    if (src == "next-gate") p.source = moe::offload::PrefetchSource::NextGate;
    else if (src == "table") p.source = moe::offload::PrefetchSource::Table;
    else if (src == "predictor") p.source = moe::offload::PrefetchSource::Predictor;
    else throw moe::Error("offload spec: prefetch.source must be next-gate, table or predictor, got '" + src + "'");
    p.lookahead = pf.Get("lookahead").As<Napi::Number>().Int32Value();
    if (pf.Get("pieces").IsNumber()) p.pieces = pf.Get("pieces").As<Napi::Number>().Int32Value();
    if (pf.Get("maxInFlight").IsNumber()) p.max_in_flight = pf.Get("maxInFlight").As<Napi::Number>().Int32Value();
    p.host_gate = pf.Get("hostGate").ToBoolean();
    if (p.source == moe::offload::PrefetchSource::Table) {
      p.width = pf.Get("width").As<Napi::Number>().Int32Value();
      Napi::Array t = pf.Get("table").As<Napi::Array>();
      for (uint32_t g = 0; g < t.Length(); ++g) p.table.push_back(to_vector<int32_t, Napi::Int32Array>(t.Get(g), "prefetch.table[g]"));
    }
    if (p.source == moe::offload::PrefetchSource::Predictor) p.predictor = std::make_shared<moe::offload::PredictorMlp>(to_predictor(pf.Get("predictor")));
    if (p.host_gate) {
      if (!spec.Get("tensors").IsArray()) throw moe::Error("offload spec: prefetch next-gate on the CPU engine needs the checkpoint's tensors");
      if (!holder->routers) holder->routers = moe::WeightStore::open(c, to_tensors(spec.Get("tensors").As<Napi::Array>()));
      o.weights = &holder->routers->weights();
    }
  }
  if (spec.Get("record").IsObject()) {
    Napi::Object r = spec.Get("record").As<Napi::Object>();
    o.record = true;
    o.record_options.scores = r.Get("scores").ToBoolean();
    o.record_options.gate_next = r.Get("gateNext").ToBoolean();
    o.record_options.timings = r.Get("timings").ToBoolean();
    if (o.record_options.gate_next) {
      if (!spec.Get("tensors").IsArray()) throw moe::Error("offload spec: recording gate_next needs the checkpoint's tensors");
      if (!holder->routers) holder->routers = moe::WeightStore::open(c, to_tensors(spec.Get("tensors").As<Napi::Array>()));
      o.weights = &holder->routers->weights();
    }
  }
  holder->session = std::make_unique<moe::offload::OffloadSession>(engine, std::make_unique<moe::offload::OffloadController>(std::move(o)));
  return holder;
}

Napi::Object take_recorded(Napi::Env env, moe::offload::OffloadController& c) {
  moe::offload::RecordedRows& r = c.recorded();
  Napi::Object o = Napi::Object::New(env);
  o.Set("rows", static_cast<double>(r.rows()));
  o.Set("step", to_typed<Napi::Int32Array>(env, r.step));
  o.Set("phase", to_typed<Napi::Uint8Array>(env, r.phase));
  o.Set("layer", to_typed<Napi::Uint16Array>(env, r.layer));
  o.Set("seq", to_typed<Napi::Int32Array>(env, r.seq));
  o.Set("pos", to_typed<Napi::Int32Array>(env, r.pos));
  o.Set("token", to_typed<Napi::Int32Array>(env, r.token));
  o.Set("experts", to_typed<Napi::Int32Array>(env, r.experts));
  o.Set("weights", to_typed<Napi::Float32Array>(env, r.weights));
  o.Set("scores", to_typed<Napi::Float32Array>(env, r.scores));
  o.Set("gateNext", to_typed<Napi::Int32Array>(env, r.gate_next));
  o.Set("gateNextValid", to_typed<Napi::Uint8Array>(env, r.gate_next_valid));
  o.Set("layerUs", to_typed<Napi::Float32Array>(env, r.layer_us));
  o.Set("hits", to_typed<Napi::Uint16Array>(env, r.hits));
  o.Set("misses", to_typed<Napi::Uint16Array>(env, r.misses));
  r.clear();
  return o;
}

Napi::Object take_miss_log(Napi::Env env, moe::offload::OffloadController& c) {
  Napi::Object o = Napi::Object::New(env);
  moe::offload::MissLog* log = c.miss_log();
  moe::offload::MissLog empty;
  moe::offload::MissLog& r = log ? *log : empty;
  o.Set("rows", static_cast<double>(r.rows()));
  o.Set("step", to_typed<Napi::Int32Array>(env, r.step));
  o.Set("layer", to_typed<Napi::Int32Array>(env, r.layer));
  o.Set("expert", to_typed<Napi::Int32Array>(env, r.expert));
  o.Set("tokens", to_typed<Napi::Int32Array>(env, r.tokens));
  o.Set("copyBacklogMs", to_typed<Napi::Float32Array>(env, r.copy_backlog_ms));
  o.Set("viaCopyMs", to_typed<Napi::Float32Array>(env, r.via_copy_ms));
  o.Set("viaCpuMs", to_typed<Napi::Float32Array>(env, r.via_cpu_ms));
  o.Set("cpuMeasuredMs", to_typed<Napi::Float32Array>(env, r.cpu_measured_ms));
  o.Set("cpuFactor", to_typed<Napi::Float32Array>(env, r.cpu_factor));
  o.Set("onCpu", to_typed<Napi::Uint8Array>(env, r.on_cpu));
  o.Set("firstOfLayer", to_typed<Napi::Uint8Array>(env, r.first_of_layer));
  r.clear();
  return o;
}

Napi::Value cache_stats(Napi::Env env, const moe::offload::OffloadController& c) {
  if (!c.has_cache()) return env.Null();
  const moe::offload::ExpertCache& cache = c.cache();
  const size_t L = static_cast<size_t>(cache.layers());
  Napi::Float64Array req = Napi::Float64Array::New(env, L), hits = Napi::Float64Array::New(env, L), ins = Napi::Float64Array::New(env, L),
                     ev = Napi::Float64Array::New(env, L), by = Napi::Float64Array::New(env, L);
  for (size_t l = 0; l < L; ++l) {
    const moe::offload::LayerCacheStats& s = cache.stats(static_cast<int>(l));
    req[l] = static_cast<double>(s.requests);
    hits[l] = static_cast<double>(s.hits);
    ins[l] = static_cast<double>(s.inserts);
    ev[l] = static_cast<double>(s.evictions);
    by[l] = static_cast<double>(s.bypasses);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("requests", req);
  o.Set("hits", hits);
  o.Set("inserts", ins);
  o.Set("evictions", ev);
  o.Set("bypasses", by);
  if (c.prefetching()) {
    const moe::offload::PrefetchStats& p = c.prefetch_stats();
    Napi::Object pf = Napi::Object::New(env);
    pf.Set("issued", static_cast<double>(p.issued));
    pf.Set("useful", static_cast<double>(p.useful));
    pf.Set("dropped", static_cast<double>(p.dropped));
    pf.Set("needed", static_cast<double>(p.needed));
    pf.Set("alreadyCached", static_cast<double>(p.already));
    if (c.prefetch_options()->predictor) {  // the in-line predictor's own time (predictor_mlp.h)
      pf.Set("inferUs", p.infer_us);
      pf.Set("inferPredictions", static_cast<double>(p.infer_predictions));
      pf.Set("prefillInferUs", p.prefill_infer_us);
      pf.Set("prefillInferPredictions", static_cast<double>(p.prefill_infer_predictions));
    }
    o.Set("prefetch", pf);
  }
  return o;
}

}  // namespace moe_addon
