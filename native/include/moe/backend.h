#pragma once
// A backend runs the model's forward on one device and owns everything device-side: derived
// weights, the per-sequence KV caches and scratch. The Engine above it (device-agnostic) owns
// the sequences' bookkeeping, sampling and stopping. The CPU backend is the reference; the CUDA
// backend of issue 5 implements the same interface.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/config.h"
#include "moe/debug_hook.h"
#include "moe/moe_plan.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantized_file.h"
#include "moe/weights.h"

namespace moe {

// A ragged batch: row i is token tokens[i] of sequence slot seq[i] at position pos[i]. A sequence
// may have many rows (prefill) or one (decode); its positions must continue its cache exactly.
struct StepBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> seq;
  std::vector<int32_t> pos;
  std::vector<int32_t> logit_rows;  // rows whose next-token logits are wanted, in this order
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Drops all sequences and makes capacity.size() empty slots, slot i able to hold capacity[i] tokens.
  virtual void reset_sequences(const std::vector<int>& capacity) = 0;
  virtual int sequence_length(int slot) const = 0;
  // Empties one slot (length 0) and leaves the others as they are: continuous batching reuses the
  // slot's cache rows for the next sequence, which overwrites them from position 0.
  virtual void clear_sequence(int slot) = 0;
  // Runs the model on the batch, appending to the caches; logits: [logit_rows.size(), vocab].
  virtual void forward(const StepBatch& batch, float* logits) = 0;
  // A greedy step that may leave the logits on the device: true when tokens[r] holds each logit row's
  // arg-max (lowest index on ties) and `logits` was not written; false when `logits` was written as by
  // forward() (a backend without device sampling, or a row with a NaN or infinite logit, which the engine
  // then names). The CUDA backend samples on the GPU; the CPU backend's logits are already in host memory.
  virtual bool forward_argmax(const StepBatch& batch, int32_t* tokens, float* logits) {
    (void)tokens;
    forward(batch, logits);
    return false;
  }
  virtual void set_debug_hook(DebugHook hook) = 0;
  virtual void set_moe_interceptor(MoeInterceptor* interceptor) = 0;  // not owned; nullptr: none
  // A JSON object describing the device (the CUDA backend: GPU name, memory figures); "{}" on the CPU.
  virtual std::string device_info() const { return "{}"; }
};

struct CpuBackendOptions {
  int threads = 0;  // 0: hardware concurrency
  // Routed experts quantized in host memory (moe/quant/expert_format.h; BF16: the checkpoint's weights, read
  // in place), computed by the quantized CPU expert kernels (moe/quant/expert_kernels.h); quantized_file as
  // on CUDA (moe/quant/quantized_file.h; empty path: none).
  quant::ExpertDType expert_dtype = quant::ExpertDType::BF16;
  int expert_group = quant::kDefaultInt4Group;
  quant::QuantizedFileSpec quantized_file;
};
std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& config, const ModelWeights& weights,
                                          const CpuBackendOptions& options);

}  // namespace moe
