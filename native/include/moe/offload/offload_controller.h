#pragma once
// The offloading runtime's hook into the engine's MoE step (a MoeInterceptor), for the CPU engine:
//  - routing replay: every row's experts and weights forced from a recorded trace;
//  - expert-cache accounting: per-MoE-layer caches (ExpertCache) see each step's request set and
//    count hits and misses; the weights stay host-resident (no device yet: "slots" are bookkeeping
//    that a GPU backend will map to device buffers);
//  - trace recording: routing, router scores, gate_next, per-layer wall time and hits/misses.
// The interceptor sees a MoePlan without the batch's sequence ids and positions, so an
// OffloadSession drives the Engine instead of calling it directly: it mirrors Engine::begin/step's
// row layout (prefill: every prompt's tokens, prompts in order; decode: one row per running
// sequence, ascending) and tells the controller before each forward.
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "moe/debug_hook.h"
#include "moe/engine.h"
#include "moe/moe_plan.h"
#include "moe/offload/expert_cache.h"
#include "moe/offload/miss_policy.h"
#include "moe/offload/prefetch.h"
#include "moe/thread_pool.h"
#include "moe/weights.h"

namespace moe {
namespace offload {

// Routing of the trace sequences a run replays: sequence g drives the run's g-th prompt (counting
// across begin() calls). experts/weights: [length * moe_layers * k], ((t * L) + l) * k + j, t = position.
struct ReplaySequence {
  int length = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

struct RecordOptions {
  bool scores = false;     // the router's softmax over all experts
  bool gate_next = false;  // top-k of the next MoE layer's router on this layer's MoE input (needs router weights)
  bool timings = false;    // layer_us, hits, misses per (step, layer)
};

struct OffloadOptions {
  int num_layers = 0;
  std::vector<int> moe_layers;  // model layer ids, ascending
  int num_experts = 0;
  int k = 0;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  // Expert cache (accounting); cache.layers / num_experts are filled from the geometry.
  bool use_cache = false;
  ExpertCacheOptions cache;
  // belady: the request sets the run will produce (flat, step-major, as next_request_steps takes
  // them); every step is checked against them and a divergence is an error.
  std::vector<int32_t> planned_offsets, planned_experts;
  // Routing replay; empty: the model's router decides.
  std::vector<ReplaySequence> replay;
  bool record = false;
  RecordOptions record_options;
  // Misses (issue 12; the CUDA backend acts on it): fetch, cpu or hybrid, with the cost model's estimates.
  MissPolicy miss;
  // Prefetch (issue 12; decisions here, copies by the CUDA backend): see moe/offload/prefetch.h.
  PrefetchOptions prefetch;
  // Router weights of every layer (only the MoE layers' are read), for gate_next.
  const ModelWeights* weights = nullptr;
  // Resident steps (MoeInterceptor::plans_after_forward): allowed unless false (`--resident-steps off`, for
  // measuring what they save; the simulator's SimConfig.residentSteps).
  bool resident_steps = true;
};

// Rows recorded since the last take, in trace order (forward step, MoE layer, row of the step).
struct RecordedRows {
  std::vector<int32_t> step, seq, pos, token;
  std::vector<uint8_t> phase;
  std::vector<uint16_t> layer;
  std::vector<int32_t> experts;   // [rows * k]
  std::vector<float> weights;     // [rows * k]
  std::vector<float> scores;      // [rows * E]
  std::vector<int32_t> gate_next; // [rows * k]
  std::vector<uint8_t> gate_next_valid;
  std::vector<float> layer_us;
  std::vector<uint16_t> hits, misses;
  size_t rows() const { return step.size(); }
  void clear();
};

class OffloadController final : public MoeInterceptor {
 public:
  explicit OffloadController(OffloadOptions options);

  // Row layout of the next forward (set by OffloadSession). phase: 0 prefill, 1 decode.
  void begin_forward(int phase, const std::vector<int32_t>& seq, const std::vector<int32_t>& pos, const std::vector<int32_t>& tokens);
  void end_forward();
  // The forward threw: drop the rows it recorded (cache state it changed cannot be rolled back).
  void abort_forward();

  void on_plan(MoePlan& plan) override;
  const MlpWeights* expert_weights(int layer, int expert) override { return nullptr; }  // host-resident
  // The cache's slot of the expert (what the CUDA backend mirrors on the device); -1 without a cache.
  int cached_slot(int layer, int expert) const override {
    const int mi = moe_index(layer);
    return cache_ && mi >= 0 ? cache_->layer(mi).slot_of(expert) : -1;
  }
  const MissPolicy* miss_policy() const override { return &options_.miss; }
  MissLog* miss_log() override { return options_.miss.log ? &miss_log_ : nullptr; }
  double cpu_estimate_factor() const override { return cpu_correction_.factor; }
  void on_cpu_job(int rows, double measured_ms) override {
    cpu_correction_.observe(measured_ms, interpolate_curve(options_.miss.costs.cpu_expert_ms, rows));
  }
  // admit false (miss_policy.h): the backlog for the next on_plan's rule; that on_plan's decisions.
  void set_copy_backlog(const CopyBacklog& b) override { copy_backlog_ = b; }
  const LayerMissDecisions* miss_decisions(int layer) const override {
    return layer_decisions_.layer == layer && layer >= 0 ? &layer_decisions_ : nullptr;
  }
  // Prefetch (prefetch_decisions.cpp).
  const PrefetchOptions* prefetch_options() const override { return prefetching() ? &options_.prefetch : nullptr; }
  int gate_next_layer(int layer) const override;
  void on_gate_next(int layer, const int32_t* ids, int rows, int k) override;
  const std::vector<PrefetchOrder>* prefetch_orders() const override { return prefetching() ? &orders_ : nullptr; }
  const PrefetchStats& prefetch_stats() const { return prefetch_stats_; }
  bool prefetching() const { return options_.prefetch.source != PrefetchSource::None && cache_ != nullptr; }
  // Resident steps: on_plan may follow the forward when there is a cache, nothing is recorded and nothing
  // prefetched (the backend also checks that the cache holds every expert); routing replay's rows for
  // plan.layer, ahead of the forward (the rows begin_forward announced).
  bool plans_after_forward() const override { return options_.resident_steps && cache_ && !options_.record && !prefetching(); }
  bool routing_ahead(MoePlan& plan) const override;

  // The debug hook recording needs; forwards every call to `user` (e.g. the addon's capture).
  DebugHook make_hook();
  void set_user_hook(DebugHook user) { user_hook_ = std::move(user); }
  bool needs_hook() const { return options_.record || (prefetching() && options_.prefetch.host_gate); }

  bool has_cache() const { return cache_ != nullptr; }
  const ExpertCache& cache() const { return *cache_; }
  RecordedRows& recorded() { return rows_; }
  int forward_steps() const { return forward_step_; }

 private:
  void on_hook(const char* name, int layer, const float* data, int rows, int cols);
  void replay_plan(MoePlan& plan) const;
  void account(int moe_index, const MoePlan& plan, int& hits, int& misses);
  // A decode forward's step whose misses the miss rule decides before the cache admits the fetched ones.
  StepCounts account_deciding_misses(int moe_index, int32_t step, const MoePlan& plan, int n);
  bool decides_misses() const { return phase_ != 0 && options_.miss.mode != MissMode::Fetch && !options_.miss.admit; }
  void record_plan(int moe_index, const MoePlan& plan, int hits, int misses);
  // prefetch_decisions.cpp
  void check_prefetch_options();
  void prefetch_step_start();
  void prefetch_after(int moe_index);
  void prefetch_into(int target, int32_t step, const int32_t* rows, int nrows);
  void predict_prefill_rows(int target);
  int predict_row(int r, int i_src, PredictorScratch& scratch, int32_t* out) const;
  void count_prefetch(int target, int32_t step, const int32_t* set, const CacheOutcome* outcomes, int n);
  int moe_index(int layer) const { return layer >= 0 && layer < static_cast<int>(moe_index_.size()) ? moe_index_[static_cast<size_t>(layer)] : -1; }

  OffloadOptions options_;
  std::vector<int> moe_index_;  // model layer -> index in moe_layers, -1 for dense layers
  std::unique_ptr<ExpertCache> cache_;
  std::vector<int32_t> planned_next_;
  DebugHook user_hook_;
  std::unique_ptr<ThreadPool> pool_;  // gate_next's router matmul

  // The forward in progress.
  int phase_ = 0;
  std::vector<int32_t> seq_, pos_, tokens_;
  int forward_step_ = 0;   // trace step: one per forward
  int32_t cache_step_ = 0; // cache step: one per prefill position or decode forward (the simulator's steps)

  // Scratch, grown once to the largest batch and reused.
  std::vector<int32_t> set_, set_mark_, row_order_;
  std::vector<float> scores_, gate_logits_, gate_weight_;
  std::vector<int32_t> gate_idx_;
  bool gate_ready_ = false, scores_ready_ = false;
  size_t layer_first_row_ = 0, forward_first_row_ = 0;
  std::chrono::steady_clock::time_point moe_start_;
  double overhead_us_ = 0;
  RecordedRows rows_;
  MissLog miss_log_;
  // admit false: decode forwards decide their misses here (account), before the cache admits them
  CopyBacklog copy_backlog_;
  LayerMissDecisions layer_decisions_;
  std::vector<double> cpu_free_;
  CpuCorrection cpu_correction_;  // on as options_.miss.correct_cpu says (constructor)
  std::vector<int32_t> expert_tokens_;
  // Prefetch state: orders of the last begin_forward / on_plan; per (MoE layer, expert) the cache step a
  // prefetch was issued for and the step whose prefetch evicted it (-1: none); next-gate ids per MoE layer
  // of the current forward ([rows * k]); scratch.
  std::vector<PrefetchOrder> orders_;
  PrefetchStats prefetch_stats_;
  std::vector<int32_t> prefetched_for_, prefetch_victim_at_;
  std::vector<std::vector<int32_t>> gate_ids_;
  std::vector<int32_t> pf_set_, pf_rows_, pf_ids_;
  // predicted: per-thread scratch, and a prefill layer's ids computed for all its rows at once
  // ([row * budget], counts per row) with the pool that computes them
  std::vector<PredictorScratch> pf_scratch_;
  std::vector<int32_t> pf_prefill_ids_, pf_prefill_count_;
  std::unique_ptr<ThreadPool> pf_pool_;
  std::vector<CacheOutcome> outcomes_;
};

// Drives an Engine with an OffloadController attached (see the header comment). The engine must
// outlive the session; the session installs the controller as the engine's interceptor and, when
// recording, its debug hook.
class OffloadSession {
 public:
  OffloadSession(Engine& engine, std::unique_ptr<OffloadController> controller);
  ~OffloadSession();
  StepOutput begin(const GenerationRequest& request);
  StepOutput step();
  // Engine::score (teacher forcing) through the session: each forward's rows are announced to the
  // controller as begin()/step() announce theirs (the first forward as a prefill, the rest as decode
  // steps), the sequences numbered after the prompts begun before. Ends any generation.
  void score(const std::vector<std::vector<int32_t>>& sequences, int prefill_tokens);
  OffloadController& controller() { return *controller_; }
  void set_user_hook(DebugHook hook);

 private:
  StepOutput finish_forward(StepOutput out);
  Engine& engine_;
  std::unique_ptr<OffloadController> controller_;
  int sequence_base_ = 0;  // prompts begun before the current request
  int batch_size_ = 0;
  std::vector<int32_t> length_, last_token_;
  std::vector<FinishReason> finish_;
};

}  // namespace offload
}  // namespace moe
