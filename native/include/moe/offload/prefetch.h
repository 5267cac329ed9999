#pragma once
// Prefetch (issue 12): which experts the runtime brings into the expert cache ahead of their request,
// and what a GPU backend needs to move them. The decisions are the simulator's (sim/src/timing/engine.ts
// issuePrefetch, sim/src/prefetch/sources.ts): for step s and MoE layer t the set P(s, t) is known right
// after the router of layer t - lookahead (at the step's start when that is negative), the cache's
// protected set becomes P(s, t), and each expert of P(s, t), ascending, goes through LayerCache::prefetch
// (a free slot, else the policy's victim among experts outside P(s, t); none -> dropped).
//   next-gate  P(s, t) = union over the step's rows of the top-k of layer t's router applied to layer t-1's
//              MoE input (the backend or, on the CPU engine, the controller computes it); lookahead 1.
//   table      P(s, t) = union over the step's rows of table[g][(pos * L + t) * width + j] (j < width,
//              -1 = none): oracle (the replayed routing itself).
//   predictor  P(s, t) = union over the step's rows of the trained predictor's ids for layer t, computed here
//              after layer t - lookahead's routing (moe/offload/predictor_mlp.h) from the replayed routing:
//              predicted (its inputs are the replay's routing, so it needs one).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/offload/predictor_mlp.h"

namespace moe {
namespace offload {

enum class PrefetchSource { None, NextGate, Table, Predictor };

struct PrefetchOptions {
  PrefetchSource source = PrefetchSource::None;
  std::string name = "none";  // the option's value, for messages and device_info
  int lookahead = 1;
  int width = 0;                              // table: ids per (position, layer)
  std::vector<std::vector<int32_t>> table;    // table: per replayed sequence g, [length * L * width]
  bool host_gate = false;                     // next-gate on the CPU engine: the controller applies the router
  std::shared_ptr<PredictorMlp> predictor;    // predictor: the MLP (its lookahead is this lookahead)
  // GPU copy scheduling (the backend reads them): pieces per prefetched expert and how many pieces may be
  // on the copy stream at once (a demand copy waits behind at most that many).
  int pieces = 3;
  int max_in_flight = 1;
};

// One prefetch the cache admitted: copy expert `expert` of MoE layer `mi` into `slot` (its old occupant,
// when any, was evicted). Decided at cache step `step` for that step's visit of layer mi.
struct PrefetchOrder {
  int mi = 0;
  int expert = 0;
  int slot = 0;
  int32_t step = 0;
};

// Decision counts (the simulator's TimingResult.prefetch): issued = took a slot, dropped = no slot,
// useful = a request of the step it was issued for hit it, needed = requests not cached before the prefetch.
struct PrefetchStats {
  int64_t issued = 0;
  int64_t useful = 0;
  int64_t dropped = 0;
  int64_t needed = 0;
  int64_t already = 0;  // already cached: nothing to do
  // predicted: the in-line predictor's wall time and predictions, decode forwards (one row per sequence,
  // serial, on the forward's critical path) and prefill forwards (all rows of a layer at once, in parallel)
  double infer_us = 0;
  int64_t infer_predictions = 0;
  double prefill_infer_us = 0;
  int64_t prefill_infer_predictions = 0;
};

}  // namespace offload
}  // namespace moe
