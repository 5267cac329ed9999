#pragma once
// The engine: a loaded model plus the generation loop's state, independent of the device.
// Generation is driven step by step from outside (the Node binding streams tokens this way).
// The engine holds sequence slots, each with its own KV cache in the backend; step() runs one
// forward over every running slot: a slot whose prompt is not prefilled yet contributes all its
// prompt rows (and samples its first token), the others one decode row. Two ways to use it:
//  - continuous batching (the server): open_slots() once, then add_sequence() / remove_sequence()
//    between steps; a sequence joining or leaving changes no other slot's cache or random stream;
//  - one batch (generate, bench): begin() fills one slot per prompt and runs the first step (the
//    prefill of every prompt), step() the decode steps until done().
// Not thread-safe: one call at a time.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "moe/backend.h"
#include "moe/config.h"
#include "moe/kernels.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantized_file.h"
#include "moe/weights.h"

namespace moe {

struct EngineOptions {
  std::string device = "cpu";  // "cpu" ("cuda": issue 5)
  int threads = 0;             // CPU threads; 0: all
  // device 'cuda' only (issue 6): >= 0 offloads the routed experts to pinned host memory with this many
  // GPU slots per MoE layer; -1 keeps every weight on the GPU. Ignored on the CPU.
  int offload_slots = -1;
  uint64_t gpu_budget_bytes = 0;  // device 'cuda': > 0 caps the engine's device allocations (checked)
  // Issue 13: how the routed experts are stored and computed. BF16 is the checkpoint's weights as before;
  // INT8 / INT4 (moe/quant/expert_format.h): on device 'cuda' the offloaded experts (offload_slots >= 0;
  // host memory, GPU slots), on device 'cpu' the CPU engine's own quantized copy. expert_group: inputs per
  // int4 group (ignored otherwise).
  quant::ExpertDType expert_dtype = quant::ExpertDType::BF16;
  int expert_group = quant::kDefaultInt4Group;
  // int8 / int4 offloaded experts: the quantized experts file to read or write (moe/quant/quantized_file.h;
  // the TypeScript side decides which after checking the file's header). Empty path: none.
  quant::QuantizedFileSpec quantized_file;
};

struct GenerationRequest {
  std::vector<std::vector<int32_t>> prompts;
  int max_new_tokens = 16;
  SamplingParams sampling;
  uint64_t seed = 0;
  bool stop_on_eos = true;
};

// One sequence of continuous batching. Its random stream depends on its seed only (the same as
// prompt 0 of a begin() with that seed), so a sequence samples the same tokens whatever runs beside it.
struct SequenceRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 16;
  SamplingParams sampling;
  uint64_t seed = 0;
  bool stop_on_eos = true;
};

// Free: the slot holds no sequence (continuous batching).
enum class FinishReason : int8_t { Running = 0, Eos = 1, Length = 2, Free = 3 };

struct StepOutput {
  std::vector<int32_t> token;         // per slot; -1 when it produced nothing this step
  std::vector<FinishReason> finish;   // per slot, after this step
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
  // No slot is running (every sequence finished, was removed, or none was added).
  bool done() const;

  // Continuous batching. open_slots drops every sequence and makes `slots` empty slots of
  // `capacity` tokens each (prompt + generated). add_sequence puts a sequence in the lowest free
  // slot and returns it; its prompt is prefilled by the next step(). remove_sequence frees a slot
  // (running or finished); the slot's cache is reused by the next sequence added there.
  void open_slots(int slots, int capacity);
  int add_sequence(const SequenceRequest& request);
  void remove_sequence(int slot);
  int slot_count() const { return static_cast<int>(slots_.size()); }
  int free_slots() const;
  int slot_capacity() const { return slot_capacity_; }
  // The rows the next step() runs (the offloading driver announces them to its controller first),
  // and whether any of them prefills a prompt.
  StepBatch next_batch() const;
  bool next_has_prefill() const;
  // Teacher forcing (agreement checks): keeps the logits of every position of every sequence in
  // last_logits() ([sum of lengths, vocab], sequences in order). prefill_tokens 0: the sequences run
  // as one prefill batch; n > 0: their first n tokens do, then the rest one decode step per position
  // (all sequences together), so the decode path is checked on the same tokens. Ends any generation.
  // around (optional) wraps each forward: it is given the forward's rows, whether it is the prefill
  // (the first forward), and the forward to call; the offloading session announces the rows to its
  // controller there, as begin()/step() do.
  using ForwardAround = std::function<void(const StepBatch& batch, bool prefill, const std::function<void()>& forward)>;
  void score(const std::vector<std::vector<int32_t>>& sequences, int prefill_tokens = 0, const ForwardAround& around = nullptr);
  // Logits of the last begin()/step(): [rows, vocab], rows as StepOutput::logits_seq says; an error when
  // that step kept none (set_keep_logits(false) and every row greedy: sampled on the device).
  const std::vector<float>& last_logits() const;
  // Whether begin()/step() must bring every row's logits to the host (default true). false lets a backend
  // with device sampling (CUDA) return only the tokens of an all-greedy step: same tokens, less host work.
  void set_keep_logits(bool keep) { keep_logits_ = keep; }

  void set_debug_hook(DebugHook hook) { backend_->set_debug_hook(std::move(hook)); }
  void set_moe_interceptor(MoeInterceptor* interceptor) { backend_->set_moe_interceptor(interceptor); }

 private:
  // Run state of one slot.
  struct Slot {
    std::vector<int32_t> pending;  // prompt tokens not prefilled yet (all of them, or none)
    int32_t last_token = -1;
    int generated = 0;
    int max_new_tokens = 0;
    bool stop_on_eos = true;
    SamplingParams sampling;
    Rng rng;
    FinishReason finish = FinishReason::Free;
  };
  void check_params(int max_new_tokens, const SamplingParams& s, const std::string& what) const;
  void check_prompt(const std::vector<int32_t>& prompt, const std::string& what) const;
  void fill_slot(int slot, const std::vector<int32_t>& prompt, int max_new_tokens, const SamplingParams& sampling,
                 bool stop_on_eos, uint64_t rng_seed);
  StepOutput sample_rows(const StepBatch& batch);

  ModelConfig config_;
  std::unique_ptr<WeightStore> store_;
  std::unique_ptr<Backend> backend_;
  bool slots_open_ = false;  // begin() or open_slots() since the last score()
  int slot_capacity_ = 0;    // open_slots' capacity; 0 after begin() (per-prompt capacities)
  std::vector<Slot> slots_;
  std::vector<float> logits_;
  bool keep_logits_ = true;
  bool logits_kept_ = true;            // the last begin()/step() wrote logits_
  std::vector<int32_t> device_tokens_;  // forward_argmax's tokens, per logit row
  std::vector<float> work_;
  std::vector<int32_t> order_;
};

}  // namespace moe
