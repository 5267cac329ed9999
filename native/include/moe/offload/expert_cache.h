#pragma once
// The expert caches of every MoE layer of a model, with per-layer counts: what a run reports as hits
// and misses. One LayerCache per MoE layer (index l = position in the model's MoE layer list), each
// empty at the start and persisting across steps and sequences, as in the simulator's replay.
#include <cstdint>
#include <functional>
#include <vector>

#include "moe/offload/layer_cache.h"

namespace moe {
namespace offload {

struct LayerCacheStats {
  int64_t requests = 0;
  int64_t hits = 0;
  int64_t inserts = 0;
  int64_t evictions = 0;
  int64_t bypasses = 0;
  int64_t misses() const { return requests - hits; }
};

// Counts of one cache step at one layer.
struct StepCounts {
  int hits = 0;
  int misses = 0;
};

struct ExpertCacheOptions {
  int layers = 0;
  int num_experts = 0;
  int slots_per_layer = 0;
  CachePolicy policy = CachePolicy::Lru;
  double lfru_decay = kLfruDefaultDecay;
  std::vector<std::vector<int>> pinned;  // static: pinned experts of each layer
};

class ExpertCache {
 public:
  explicit ExpertCache(const ExpertCacheOptions& options);

  int layers() const { return static_cast<int>(caches_.size()); }
  LayerCache& layer(int l) { return caches_.at(static_cast<size_t>(l)); }
  const LayerCache& layer(int l) const { return caches_.at(static_cast<size_t>(l)); }
  const LayerCacheStats& stats(int l) const { return stats_.at(static_cast<size_t>(l)); }

  // One step of layer l: begin_step(step, set) then a request for each expert of `set` (ascending,
  // distinct). next_use[i] (belady only; may be null otherwise) is set[i]'s next request step.
  // outcomes, when non-null, receives one CacheOutcome per request.
  StepCounts run_step(int l, int32_t step, const int32_t* set, int n, const int32_t* next_use, CacheOutcome* outcomes);
  // A step whose misses are decided before any is admitted (issue 12, `--cpu-fill none`: a miss computed on
  // the CPU does not enter the cache): begin_step(step, set), a request for each expert of `set` already
  // cached (ascending), then decide(misses, admit) with the step's other experts (ascending), and a request
  // for each one it admits (admit[i] != 0), in that order. The others count as requests not admitted
  // (bypasses) and leave the cache as it was. sim/src/timing/engine.ts does the same (cpuAdmit false).
  // Not for belady / opt (they need every request's next use). outcomes as run_step's (by set index).
  using MissChooser = std::function<void(const std::vector<int32_t>& misses, std::vector<uint8_t>& admit)>;
  StepCounts run_step_deciding_misses(int l, int32_t step, const int32_t* set, int n, const MissChooser& decide, CacheOutcome* outcomes);

 private:
  std::vector<LayerCache> caches_;
  std::vector<LayerCacheStats> stats_;
  std::vector<int32_t> misses_, miss_index_;  // run_step_deciding_misses' scratch
  std::vector<uint8_t> admit_;
};

// sim/src/cache/replay.ts nextRequestSteps: for request i of a flat request-set list (set (s, l) is
// experts[offsets[s * layers + l] .. offsets[s * layers + l + 1])), the next step at which the same
// expert is requested at the same layer, strictly later; kNever if never.
std::vector<int32_t> next_request_steps(int steps, int layers, int num_experts, const std::vector<int32_t>& offsets,
                                        const std::vector<int32_t>& experts);

}  // namespace offload
}  // namespace moe
