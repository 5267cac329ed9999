#include "moe/engine.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "moe/error.h"
#ifdef MOE_WITH_CUDA
#include "../cuda_backend/cuda_backend.h"
#endif

namespace moe {

Engine::Engine(const ModelConfig& config, const std::vector<TensorSource>& tensors, const EngineOptions& options)
    : config_(config) {
  if (options.device != "cpu" && options.device != "cuda") throw Error("device '" + options.device + "' is unknown (cpu or cuda)");
  if (options.threads < 0) throw Error("threads must be >= 0");
  if (options.offload_slots < -1 || options.offload_slots > config.n_routed_experts) {
    throw Error("offload_slots must be -1 (all resident) or in [0, " + std::to_string(config.n_routed_experts) + "]");
  }
  if (options.expert_dtype != quant::ExpertDType::BF16) {
    const std::string dt = quant::expert_dtype_name(options.expert_dtype);
    // the CPU quantizes its own copy in host memory; CUDA only the offloaded experts (resident ones stay bf16)
    if (options.device == "cuda" && options.offload_slots < 0) {
      throw Error("expertDtype '" + dt + "' on device 'cuda' needs the routed experts offloaded (cache or gpuMemory); every expert is resident here");
    }
    try {
      quant::expert_layout(options.expert_dtype, config.hidden_size, config.moe_intermediate_size, options.expert_group);
    } catch (const Error& e) {
      throw Error(std::string("expertGroup: ") + e.what());
    }
  } else if (!options.quantized_file.path.empty()) {
    throw Error("quantizedFile: only with int8 / int4 experts (expertDtype); bf16 experts are the checkpoint's own weights");
  }
#ifndef MOE_WITH_CUDA
  if (options.device == "cuda") {
    throw Error("device 'cuda': this build of the native engine has no CUDA backend (it is built when CMake finds "
                "nvcc, the CUDA toolkit and cuBLAS; option MOE_CUDA); use device 'cpu'");
  }
#endif
  store_ = WeightStore::open(config_, tensors);
#ifdef MOE_WITH_CUDA
  if (options.device == "cuda") {
    CudaBackendOptions cuda;
    cuda.offload_slots = options.offload_slots;
    cuda.gpu_budget_bytes = options.gpu_budget_bytes;
    cuda.expert_dtype = options.expert_dtype;
    cuda.expert_group = options.expert_group;
    cuda.quantized_file = options.quantized_file;
    backend_ = make_cuda_backend(config_, store_->weights(), cuda);
    return;
  }
#endif
  CpuBackendOptions cpu;
  cpu.threads = options.threads;
  cpu.expert_dtype = options.expert_dtype;
  cpu.expert_group = options.expert_group;
  cpu.quantized_file = options.quantized_file;
  backend_ = make_cpu_backend(config_, store_->weights(), cpu);
}

Engine::~Engine() = default;

namespace {
// Seed of sequence s's random stream in a begin() with `seed` (add_sequence uses s = 0).
uint64_t stream_seed(uint64_t seed, size_t s) { return seed + 0x9e3779b97f4a7c15ull * (s + 1); }
}  // namespace

void Engine::check_params(int max_new_tokens, const SamplingParams& s, const std::string& what) const {
  if (max_new_tokens < 1) throw Error(what + ": max_new_tokens must be >= 1");
  if (!s.greedy) {
    if (!(s.temperature > 0.f)) throw Error(what + ": temperature must be > 0");
    if (!(s.top_p > 0.f && s.top_p <= 1.f)) throw Error(what + ": top_p must be in (0, 1]");
  }
}

void Engine::check_prompt(const std::vector<int32_t>& prompt, const std::string& what) const {
  if (prompt.empty()) throw Error(what + " is empty");
  for (int32_t id : prompt) {
    if (id < 0 || id >= config_.vocab_size) {
      throw Error(what + " has token id " + std::to_string(id) + " outside the vocabulary [0, " +
                  std::to_string(config_.vocab_size) + ")");
    }
  }
}

void Engine::fill_slot(int slot, const std::vector<int32_t>& prompt, int max_new_tokens, const SamplingParams& sampling,
                       bool stop_on_eos, uint64_t rng_seed) {
  Slot& s = slots_[static_cast<size_t>(slot)];
  s.pending = prompt;
  s.last_token = -1;
  s.generated = 0;
  s.max_new_tokens = max_new_tokens;
  s.stop_on_eos = stop_on_eos;
  s.sampling = sampling;
  s.rng = Rng(rng_seed);
  s.finish = FinishReason::Running;
}

StepOutput Engine::begin(const GenerationRequest& request) {
  if (request.prompts.empty()) throw Error("generate: no prompts");
  const size_t n = request.prompts.size();
  check_params(request.max_new_tokens, request.sampling, "generate");
  std::vector<int> capacity(n);
  for (size_t s = 0; s < n; ++s) {
    check_prompt(request.prompts[s], "generate: prompt " + std::to_string(s));
    capacity[s] = static_cast<int>(request.prompts[s].size()) + request.max_new_tokens;
  }
  slots_open_ = false;
  backend_->reset_sequences(capacity);
  slots_.assign(n, Slot());
  slot_capacity_ = 0;
  for (size_t s = 0; s < n; ++s) {
    fill_slot(static_cast<int>(s), request.prompts[s], request.max_new_tokens, request.sampling, request.stop_on_eos,
              stream_seed(request.seed, s));
  }
  slots_open_ = true;
  return sample_rows(next_batch());
}

StepOutput Engine::step() {
  if (!slots_open_) throw Error("step: no generation in progress (call begin first)");
  if (done()) throw Error("step: no sequence is running");
  return sample_rows(next_batch());
}

void Engine::open_slots(int slots, int capacity) {
  if (slots < 1) throw Error("open_slots: slots must be >= 1");
  if (capacity < 2) throw Error("open_slots: capacity must be >= 2 tokens");
  slots_open_ = false;
  backend_->reset_sequences(std::vector<int>(static_cast<size_t>(slots), capacity));
  slots_.assign(static_cast<size_t>(slots), Slot());
  slot_capacity_ = capacity;
  slots_open_ = true;
}

int Engine::add_sequence(const SequenceRequest& request) {
  if (!slots_open_ || slot_capacity_ == 0) throw Error("add_sequence: no slots open (call open_slots first)");
  check_params(request.max_new_tokens, request.sampling, "add_sequence");
  check_prompt(request.prompt, "add_sequence: prompt");
  // The last generated token is never fed back, so a slot holds prompt + max_new_tokens - 1 tokens.
  const size_t need = request.prompt.size() + static_cast<size_t>(request.max_new_tokens) - 1;
  if (need > static_cast<size_t>(slot_capacity_)) {
    throw Error("add_sequence: prompt of " + std::to_string(request.prompt.size()) + " tokens plus " +
                std::to_string(request.max_new_tokens) + " new tokens exceeds the slot capacity of " +
                std::to_string(slot_capacity_) + " tokens");
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].finish != FinishReason::Free) continue;
    backend_->clear_sequence(static_cast<int>(i));
    fill_slot(static_cast<int>(i), request.prompt, request.max_new_tokens, request.sampling, request.stop_on_eos,
              stream_seed(request.seed, 0));
    return static_cast<int>(i);
  }
  throw Error("add_sequence: all " + std::to_string(slots_.size()) + " slots are in use");
}

void Engine::remove_sequence(int slot) {
  if (!slots_open_ || slot < 0 || static_cast<size_t>(slot) >= slots_.size()) {
    throw Error("remove_sequence: slot " + std::to_string(slot) + " does not exist");
  }
  if (slots_[static_cast<size_t>(slot)].finish == FinishReason::Free) throw Error("remove_sequence: slot " + std::to_string(slot) + " is free");
  slots_[static_cast<size_t>(slot)] = Slot();
  backend_->clear_sequence(slot);
}

int Engine::free_slots() const {
  int n = 0;
  for (const Slot& s : slots_) n += s.finish == FinishReason::Free ? 1 : 0;
  return n;
}

// Slots in ascending order, each with its whole prompt (prefill) or its last token (decode): for
// begin() this is the one-batch prefill layout the offloading session mirrors.
StepBatch Engine::next_batch() const {
  StepBatch batch;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.finish != FinishReason::Running) continue;
    const int32_t base = backend_->sequence_length(static_cast<int>(i));
    if (!s.pending.empty()) {
      for (size_t p = 0; p < s.pending.size(); ++p) {
        batch.tokens.push_back(s.pending[p]);
        batch.seq.push_back(static_cast<int32_t>(i));
        batch.pos.push_back(base + static_cast<int32_t>(p));
      }
    } else {
      batch.tokens.push_back(s.last_token);
      batch.seq.push_back(static_cast<int32_t>(i));
      batch.pos.push_back(base);
    }
    batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
  }
  return batch;
}

bool Engine::next_has_prefill() const {
  for (const Slot& s : slots_) {
    if (s.finish == FinishReason::Running && !s.pending.empty()) return true;
  }
  return false;
}

void Engine::score(const std::vector<std::vector<int32_t>>& sequences, int prefill_tokens, const ForwardAround& around) {
  if (sequences.empty()) throw Error("score: no sequences");
  if (prefill_tokens < 0) throw Error("score: prefill_tokens must be >= 0");
  const size_t V = static_cast<size_t>(config_.vocab_size);
  std::vector<int> capacity;
  std::vector<size_t> offset;  // first output row of each sequence
  size_t total = 0, longest = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    if (sequences[s].empty()) throw Error("score: sequence " + std::to_string(s) + " is empty");
    for (int32_t id : sequences[s]) {
      if (id < 0 || id >= config_.vocab_size) {
        throw Error("score: sequence " + std::to_string(s) + " has token id " + std::to_string(id) + " outside the vocabulary");
      }
    }
    capacity.push_back(static_cast<int>(sequences[s].size()));
    offset.push_back(total);
    total += sequences[s].size();
    longest = std::max(longest, sequences[s].size());
  }
  slots_open_ = false;
  slots_.clear();
  backend_->reset_sequences(capacity);
  logits_.resize(total * V);
  logits_kept_ = true;
  const size_t first = prefill_tokens > 0 ? static_cast<size_t>(prefill_tokens) : longest;
  std::vector<float> step_logits;
  // Runs positions [p0, p1) of every sequence that has them, as one batch, and files the logits.
  auto run = [&](size_t p0, size_t p1) {
    StepBatch batch;
    std::vector<size_t> dest;
    for (size_t s = 0; s < sequences.size(); ++s) {
      for (size_t i = p0; i < std::min(p1, sequences[s].size()); ++i) {
        batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size()));
        batch.tokens.push_back(sequences[s][i]);
        batch.seq.push_back(static_cast<int32_t>(s));
        batch.pos.push_back(static_cast<int32_t>(i));
        dest.push_back(offset[s] + i);
      }
    }
    if (batch.tokens.empty()) return;
    step_logits.resize(batch.tokens.size() * V);
    const auto forward = [&] { backend_->forward(batch, step_logits.data()); };
    if (around) around(batch, p0 == 0, forward);
    else forward();
    for (size_t r = 0; r < dest.size(); ++r) std::copy_n(step_logits.data() + r * V, V, logits_.data() + dest[r] * V);
  };
  run(0, first);
  for (size_t p = first; p < longest; ++p) run(p, p + 1);
}

bool Engine::done() const {
  for (const Slot& s : slots_) {
    if (s.finish == FinishReason::Running) return false;
  }
  return true;
}

const std::vector<float>& Engine::last_logits() const {
  if (!logits_kept_) throw Error("logits: the last step sampled its tokens on the device and kept no logits (keep them with setKeepLogits(true) before the step)");
  return logits_;
}

StepOutput Engine::sample_rows(const StepBatch& batch) {
  const int V = config_.vocab_size;
  const size_t R = batch.logit_rows.size();
  logits_.resize(R * static_cast<size_t>(V));
  bool all_greedy = true;
  for (size_t r = 0; r < R; ++r) all_greedy = all_greedy && slots_[static_cast<size_t>(batch.seq[static_cast<size_t>(batch.logit_rows[r])])].sampling.greedy;
  bool on_device = false;
  if (!keep_logits_ && all_greedy) {
    device_tokens_.resize(R);
    on_device = backend_->forward_argmax(batch, device_tokens_.data(), logits_.data());
  } else {
    backend_->forward(batch, logits_.data());
  }
  logits_kept_ = !on_device;
  // Broken weights (NaN/Inf) or a broken config make every logit NaN and greedy sampling then picks
  // token 0 without a word: stop instead. The message's prefix is matched by runtime/src/engine/non-finite.ts,
  // which re-runs the sequence with the debug hook to name the first layer whose output is not finite.
  // (Device sampling counts non-finite logits and then hands the logits over, so they are checked here too.)
  for (size_t r = 0; r < R && !on_device; ++r) {
    const float* row = logits_.data() + r * static_cast<size_t>(V);
    for (int v = 0; v < V; ++v) {
      if (!std::isfinite(row[v])) {
        const size_t i = static_cast<size_t>(batch.logit_rows[r]);
        throw Error("non-finite logits: sequence " + std::to_string(batch.seq[i]) + ", position " + std::to_string(batch.pos[i]) +
                    ", logit " + std::to_string(v) + " is " + (std::isnan(row[v]) ? "NaN" : "infinite"));
      }
    }
  }
  StepOutput out;
  out.token.assign(slots_.size(), -1);
  for (size_t r = 0; r < batch.logit_rows.size(); ++r) {
    const int si = batch.seq[static_cast<size_t>(batch.logit_rows[r])];
    Slot& s = slots_[static_cast<size_t>(si)];
    const int32_t tok = on_device ? device_tokens_[r] : sample_token(logits_.data() + r * V, V, s.sampling, s.rng, work_, order_);
    out.token[si] = tok;
    out.logits_seq.push_back(si);
    s.pending.clear();
    s.last_token = tok;
    ++s.generated;
    if (s.stop_on_eos && tok == config_.eos_token_id) s.finish = FinishReason::Eos;
    else if (s.generated >= s.max_new_tokens) s.finish = FinishReason::Length;
  }
  out.finish.reserve(slots_.size());
  for (const Slot& s : slots_) out.finish.push_back(s.finish);
  return out;
}

}  // namespace moe
