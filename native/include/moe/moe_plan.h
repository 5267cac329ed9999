#pragma once
// The MoE step split in two: routing produces a MoePlan ("which experts, for which tokens, with
// which weights") before any expert is computed, so an offloading layer can see the plan first
// (start transfers, count hits and misses, or replace the routing from a recorded trace) and can
// supply the weights each expert is computed with.
#include <cstdint>
#include <vector>

#include "moe/weights.h"

namespace moe {

namespace offload {
struct MissPolicy;
struct MissLog;
struct LayerMissDecisions;
struct CopyBacklog;
struct PrefetchOrder;
struct PrefetchOptions;
}  // namespace offload

struct MoePlan {
  int layer = 0;
  int tokens = 0;  // rows of the step batch
  int k = 0;       // experts per token
  std::vector<int32_t> expert;  // [tokens, k] chosen expert ids
  std::vector<float> weight;    // [tokens, k] their weights (already scaled / normalised)

  // The same, grouped by expert (filled by group(); experts ascending): tokens of expert
  // active[i] are group_token[group_begin[i] .. group_begin[i + 1]) with weights group_weight.
  std::vector<int32_t> active;
  std::vector<int32_t> group_begin;
  std::vector<int32_t> group_token;
  std::vector<float> group_weight;

  // (Re)builds the grouping from expert/weight; throws if an expert id is outside [0, n_experts).
  void group(int n_experts);
};

// Implemented by whoever wants to intercept the routed experts (issue 6: expert cache, routing
// replay, trace recording). The forward calls on_plan once per MoE layer and step, then asks
// expert_weights for each active expert, in plan.active order.
class MoeInterceptor {
 public:
  virtual ~MoeInterceptor() = default;
  // May inspect or rewrite plan.expert / plan.weight (the forward regroups afterwards).
  virtual void on_plan(MoePlan& plan) = 0;
  // Weights to compute expert `expert` of `layer` with; nullptr: the checkpoint's own.
  virtual const MlpWeights* expert_weights(int layer, int expert) = 0;
  // Offloading backends (CUDA, issue 6): the expert cache's slot of `expert` at `layer` after the last
  // on_plan, -1 when it is not cached. The backend keeps its device slots equal to this.
  virtual int cached_slot(int /*layer*/, int /*expert*/) const { return -1; }
  // Offloading backends (issue 12): what to do with a missed expert (nullptr: fetch it), and where to
  // log each decision with its estimates (nullptr: no log).
  virtual const offload::MissPolicy* miss_policy() const { return nullptr; }
  virtual offload::MissLog* miss_log() { return nullptr; }
  // The run's correction of the profile's CPU times (offload::CpuCorrection): the factor the rule decides
  // with, and each finished CPU job (its rows and measured wall time), in the layer's decision order.
  virtual double cpu_estimate_factor() const { return 1.0; }
  virtual void on_cpu_job(int /*rows*/, double /*measured_ms*/) {}
  // With a policy that does not admit CPU experts (MissPolicy::admit false): the backend gives the copy
  // engine's backlog before on_plan (miss_policy.h CopyBacklog: the interceptor may rewrite the routing,
  // so which late prefetches count is settled there), and reads the misses the interceptor decided in
  // on_plan for `layer` (nullptr: it decided none there, e.g. a prefill forward: the backend then fetches
  // every miss).
  virtual void set_copy_backlog(const offload::CopyBacklog& /*backlog*/) {}
  virtual const offload::LayerMissDecisions* miss_decisions(int /*layer*/) const { return nullptr; }
  // Prefetch (issue 12). prefetch_options: nullptr when off. gate_next_layer(layer): the model layer whose
  // router a backend applies to this layer's MoE input for next-gate (-1: none); the backend hands the
  // top-k ids ([rows, k]) to on_gate_next before on_plan of the same layer. prefetch_orders: the prefetches
  // decided by the last begin of a forward or on_plan (the backend copies them; valid until the next call).
  virtual const offload::PrefetchOptions* prefetch_options() const { return nullptr; }
  virtual int gate_next_layer(int /*layer*/) const { return -1; }
  virtual void on_gate_next(int /*layer*/, const int32_t* /*ids*/, int /*rows*/, int /*k*/) {}
  virtual const std::vector<offload::PrefetchOrder>* prefetch_orders() const { return nullptr; }
  // Resident steps (offloading backends): when every routed expert of every MoE layer is cached, a decode
  // forward may run without bringing each layer's routing to the host, and call on_plan for its layers, in
  // order, after the forward. plans_after_forward: whether this interceptor allows that (false when it must
  // see a layer's routing while the forward runs: recording, next-gate prefetch, any prefetcher). A backend
  // asks before each forward; with every expert cached on_plan then decides nothing that moves data.
  virtual bool plans_after_forward() const { return false; }
  // The routing on_plan will substitute for plan.layer's (routing replay), written into plan.expert and
  // plan.weight (plan.tokens rows of plan.k) before the forward; false (plan untouched): it keeps the router's.
  virtual bool routing_ahead(MoePlan& /*plan*/) const { return false; }
};

}  // namespace moe
