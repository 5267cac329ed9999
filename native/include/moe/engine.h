#pragma once
// The engine: a loaded model plus the generation loop's state, independent of the device.
// Generation is driven step by step from outside (the Node binding streams tokens this way):
// begin() prefills every prompt and samples each sequence's first token, step() runs one decode
// step for the sequences still active. Not thread-safe: one call at a time.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/backend.h"
#include "moe/config.h"
#include "moe/kernels.h"
#include "moe/weights.h"

namespace moe {

struct EngineOptions {
  std::string device = "cpu";  // "cpu" ("cuda": issue 5)
  int threads = 0;             // CPU threads; 0: all
  // device 'cuda' only (issue 6): >= 0 offloads the routed experts to pinned host memory with this many
  // GPU slots per MoE layer; -1 keeps every weight on the GPU. Ignored on the CPU.
  int offload_slots = -1;
  uint64_t gpu_budget_bytes = 0;  // device 'cuda': > 0 caps the engine's device allocations (checked)
};

struct GenerationRequest {
  std::vector<std::vector<int32_t>> prompts;
  int max_new_tokens = 16;
  SamplingParams sampling;
  uint64_t seed = 0;
  bool stop_on_eos = true;
};

enum class FinishReason : int8_t { Running = 0, Eos = 1, Length = 2 };

struct StepOutput {
  std::vector<int32_t> token;         // per sequence; -1 when it produced nothing this step
  std::vector<FinishReason> finish;   // per sequence, after this step
  std::vector<int32_t> logits_seq;    // sequence of each row of last_logits()
};

class Engine {
 public:
  Engine(const ModelConfig& config, const std::vector<TensorSource>& tensors, const EngineOptions& options);
  ~Engine();

  const ModelConfig& config() const { return config_; }
  const char* backend_name() const { return backend_->name(); }
  uint64_t weight_bytes() const { return store_->total_bytes(); }
  std::string device_info() const { return backend_->device_info(); }

  StepOutput begin(const GenerationRequest& request);
  StepOutput step();
  bool done() const;
  // Teacher forcing (agreement checks): keeps the logits of every position of every sequence in
  // last_logits() ([sum of lengths, vocab], sequences in order). prefill_tokens 0: the sequences run
  // as one prefill batch; n > 0: their first n tokens do, then the rest one decode step per position
  // (all sequences together), so the decode path is checked on the same tokens. Ends any generation.
  void score(const std::vector<std::vector<int32_t>>& sequences, int prefill_tokens = 0);
  // Logits of the last begin()/step(): [rows, vocab], rows as StepOutput::logits_seq says.
  const std::vector<float>& last_logits() const { return logits_; }

  void set_debug_hook(DebugHook hook) { backend_->set_debug_hook(std::move(hook)); }
  void set_moe_interceptor(MoeInterceptor* interceptor) { backend_->set_moe_interceptor(interceptor); }

 private:
  StepOutput sample_rows(const StepBatch& batch);

  ModelConfig config_;
  std::unique_ptr<WeightStore> store_;
  std::unique_ptr<Backend> backend_;
  GenerationRequest request_;
  bool active_request_ = false;
  std::vector<int32_t> last_token_;
  std::vector<int> generated_;
  std::vector<FinishReason> finish_;
  std::vector<Rng> rngs_;
  std::vector<float> logits_;
  std::vector<float> work_;
  std::vector<int32_t> order_;
};

}  // namespace moe
