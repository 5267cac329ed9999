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
    backend_ = make_cuda_backend(config_, store_->weights(), cuda);
    return;
  }
#endif
  CpuBackendOptions cpu;
  cpu.threads = options.threads;
  backend_ = make_cpu_backend(config_, store_->weights(), cpu);
}

Engine::~Engine() = default;

StepOutput Engine::begin(const GenerationRequest& request) {
  if (request.prompts.empty()) throw Error("generate: no prompts");
  if (request.max_new_tokens < 1) throw Error("generate: max_new_tokens must be >= 1");
  if (!request.sampling.greedy) {
    if (!(request.sampling.temperature > 0.f)) throw Error("generate: temperature must be > 0");
    if (!(request.sampling.top_p > 0.f && request.sampling.top_p <= 1.f)) throw Error("generate: top_p must be in (0, 1]");
  }
  const size_t n = request.prompts.size();
  StepBatch batch;
  std::vector<int> capacity(n);
  for (size_t s = 0; s < n; ++s) {
    const std::vector<int32_t>& p = request.prompts[s];
    if (p.empty()) throw Error("generate: prompt " + std::to_string(s) + " is empty");
    for (int32_t id : p) {
      if (id < 0 || id >= config_.vocab_size) {
        throw Error("generate: prompt " + std::to_string(s) + " has token id " + std::to_string(id) +
                    " outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
      }
    }
    capacity[s] = static_cast<int>(p.size()) + request.max_new_tokens;
    for (size_t i = 0; i < p.size(); ++i) {
      batch.tokens.push_back(p[i]);
      batch.seq.push_back(static_cast<int32_t>(s));
      batch.pos.push_back(static_cast<int32_t>(i));
    }
    batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
  }
  active_request_ = false;
  backend_->reset_sequences(capacity);
  request_ = request;
  last_token_.assign(n, -1);
  generated_.assign(n, 0);
  finish_.assign(n, FinishReason::Running);
  rngs_.clear();
  for (size_t s = 0; s < n; ++s) rngs_.emplace_back(request.seed + 0x9e3779b97f4a7c15ull * (s + 1));
  active_request_ = true;
  return sample_rows(batch);
}

StepOutput Engine::step() {
  if (!active_request_) throw Error("step: no generation in progress (call begin first)");
  if (done()) throw Error("step: every sequence has finished");
  StepBatch batch;
  for (size_t s = 0; s < finish_.size(); ++s) {
    if (finish_[s] != FinishReason::Running) continue;
    batch.tokens.push_back(last_token_[s]);
    batch.seq.push_back(static_cast<int32_t>(s));
    batch.pos.push_back(backend_->sequence_length(static_cast<int>(s)));
    batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
  }
  return sample_rows(batch);
}

void Engine::score(const std::vector<std::vector<int32_t>>& sequences, int prefill_tokens) {
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
  active_request_ = false;
  backend_->reset_sequences(capacity);
  logits_.resize(total * V);
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
    backend_->forward(batch, step_logits.data());
    for (size_t r = 0; r < dest.size(); ++r) std::copy_n(step_logits.data() + r * V, V, logits_.data() + dest[r] * V);
  };
  run(0, first);
  for (size_t p = first; p < longest; ++p) run(p, p + 1);
}

bool Engine::done() const {
  for (FinishReason f : finish_) {
    if (f == FinishReason::Running) return false;
  }
  return true;
}

StepOutput Engine::sample_rows(const StepBatch& batch) {
  const int V = config_.vocab_size;
  logits_.resize(batch.logit_rows.size() * static_cast<size_t>(V));
  backend_->forward(batch, logits_.data());
  // Broken weights (NaN/Inf) or a broken config make every logit NaN and greedy sampling then picks
  // token 0 without a word: stop instead. The message's prefix is matched by runtime/src/engine/non-finite.ts,
  // which re-runs the sequence with the debug hook to name the first layer whose output is not finite.
  for (size_t r = 0; r < batch.logit_rows.size(); ++r) {
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
  out.token.assign(finish_.size(), -1);
  for (size_t r = 0; r < batch.logit_rows.size(); ++r) {
    const int s = batch.seq[static_cast<size_t>(batch.logit_rows[r])];
    const int32_t tok = sample_token(logits_.data() + r * V, V, request_.sampling, rngs_[s], work_, order_);
    out.token[s] = tok;
    out.logits_seq.push_back(s);
    last_token_[s] = tok;
    ++generated_[s];
    if (request_.stop_on_eos && tok == config_.eos_token_id) finish_[s] = FinishReason::Eos;
    else if (generated_[s] >= request_.max_new_tokens) finish_[s] = FinishReason::Length;
  }
  out.finish = finish_;
  return out;
}

}  // namespace moe
