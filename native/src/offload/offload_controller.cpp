#include "moe/offload/offload_controller.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "moe/error.h"
#include "moe/kernels.h"

namespace moe {
namespace offload {

namespace {

double micros_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void RecordedRows::clear() {
  for (auto* v : {&step, &seq, &pos, &token, &experts, &gate_next}) v->clear();
  phase.clear();
  layer.clear();
  weights.clear();
  scores.clear();
  gate_next_valid.clear();
  layer_us.clear();
  hits.clear();
  misses.clear();
}

OffloadController::OffloadController(OffloadOptions o) : options_(std::move(o)) {
  cpu_correction_.on = options_.miss.correct_cpu;
  const int L = static_cast<int>(options_.moe_layers.size()), E = options_.num_experts, k = options_.k;
  if (L < 1 || E < 1 || k < 1 || k > E) throw Error("offload: bad geometry (MoE layers, experts, top-k)");
  moe_index_.assign(static_cast<size_t>(options_.num_layers), -1);
  for (int i = 0; i < L; ++i) {
    const int l = options_.moe_layers[static_cast<size_t>(i)];
    if (l < 0 || l >= options_.num_layers || (i > 0 && l <= options_.moe_layers[static_cast<size_t>(i) - 1])) {
      throw Error("offload: MoE layer ids must be ascending layers of the model");
    }
    moe_index_[static_cast<size_t>(l)] = i;
  }
  if (options_.use_cache) {
    options_.cache.layers = L;
    options_.cache.num_experts = E;
    cache_ = std::make_unique<ExpertCache>(options_.cache);
    if (options_.cache.policy == CachePolicy::Belady || options_.cache.policy == CachePolicy::Opt) {
      const size_t n = options_.planned_offsets.size();
      if (n < 1 || (n - 1) % static_cast<size_t>(L) != 0) {
        throw Error(std::string("cache policy ") + policy_name(options_.cache.policy) + " needs the future request sets of the run (routing replay with a planned schedule)");
      }
      planned_next_ = next_request_steps(static_cast<int>((n - 1) / L), L, E, options_.planned_offsets, options_.planned_experts);
    }
  }
  for (size_t g = 0; g < options_.replay.size(); ++g) {
    const ReplaySequence& s = options_.replay[g];
    const size_t want = static_cast<size_t>(s.length) * L * k;
    if (s.experts.size() != want || s.weights.size() != want) throw Error("routing replay: sequence " + std::to_string(g) + " has the wrong number of entries");
    for (int32_t e : s.experts) {
      if (e < 0 || e >= E) throw Error("routing replay: sequence " + std::to_string(g) + " names expert " + std::to_string(e) + " outside [0, " + std::to_string(E) + ")");
    }
  }
  if ((options_.record && options_.record_options.gate_next) || (options_.prefetch.source == PrefetchSource::NextGate && options_.prefetch.host_gate)) {
    if (!options_.weights) throw Error("offload: recording gate_next needs the router weights");
    for (int l : options_.moe_layers) {
      const Matrix& r = options_.weights->layers.at(static_cast<size_t>(l)).router;
      if (r.rows != E) throw Error("offload: router of layer " + std::to_string(l) + " has " + std::to_string(r.rows) + " rows, expected " + std::to_string(E));
    }
    pool_ = std::make_unique<ThreadPool>(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  set_mark_.assign(static_cast<size_t>(E), -1);
  if (!options_.miss.admit && options_.miss.mode != MissMode::Fetch && options_.use_cache && (options_.cache.policy == CachePolicy::Belady || options_.cache.policy == CachePolicy::Opt)) {
    throw Error(std::string("--cpu-fill none: the ") + policy_name(options_.cache.policy) +
                " cache needs every request's next use, so its misses cannot be decided before they are admitted; use --cpu-fill background or lazy, or another policy");
  }
  check_prefetch_options();
}

void OffloadController::begin_forward(int phase, const std::vector<int32_t>& seq, const std::vector<int32_t>& pos, const std::vector<int32_t>& tokens) {
  phase_ = phase;
  seq_ = seq;
  pos_ = pos;
  tokens_ = tokens;
  forward_first_row_ = rows_.rows();
  if (prefetching()) prefetch_step_start();
}

void OffloadController::end_forward() {
  if (phase_ == 0) {
    // Prefill: one cache step per position (see account()).
    const auto [lo, hi] = std::minmax_element(pos_.begin(), pos_.end());
    if (lo != pos_.end()) cache_step_ += *hi - *lo + 1;
  } else {
    cache_step_ += 1;
  }
  ++forward_step_;
}

void OffloadController::abort_forward() {
  // Rows of a forward that threw are dropped; cache state it changed cannot be rolled back.
  auto cut = [&](auto& v, size_t per_row) {
    if (v.size() > forward_first_row_ * per_row) v.resize(forward_first_row_ * per_row);
  };
  const size_t k = static_cast<size_t>(options_.k), E = static_cast<size_t>(options_.num_experts);
  cut(rows_.step, 1), cut(rows_.seq, 1), cut(rows_.pos, 1), cut(rows_.token, 1), cut(rows_.phase, 1), cut(rows_.layer, 1);
  cut(rows_.experts, k), cut(rows_.weights, k), cut(rows_.scores, E), cut(rows_.gate_next, k), cut(rows_.gate_next_valid, 1);
  cut(rows_.layer_us, 1), cut(rows_.hits, 1), cut(rows_.misses, 1);
}

void OffloadController::on_plan(MoePlan& plan) {
  const int mi = moe_index(plan.layer);
  if (mi < 0) throw Error("offload: MoE plan for layer " + std::to_string(plan.layer) + ", which is not a MoE layer");
  if (static_cast<size_t>(plan.tokens) != seq_.size() || plan.k != options_.k) {
    throw Error("offload: the MoE plan has " + std::to_string(plan.tokens) + " rows but the session announced " + std::to_string(seq_.size()) +
                " (was the engine driven without its OffloadSession?)");
  }
  if (!options_.replay.empty()) replay_plan(plan);
  orders_.clear();
  layer_decisions_.layer = -1;  // decided again below where this forward decides its misses
  int hits = 0, misses = 0;
  if (cache_) account(mi, plan, hits, misses);
  // the backlog was this layer's (set before each on_plan that decides misses)
  copy_backlog_.ms = 0;
  copy_backlog_.late_prefetch_ms.clear();
  if (prefetching() && phase_ != 0) prefetch_after(mi);
  if (options_.record) {
    const auto t0 = std::chrono::steady_clock::now();
    record_plan(mi, plan, hits, misses);
    overhead_us_ += micros_since(t0);
  }
}

bool OffloadController::routing_ahead(MoePlan& plan) const {
  if (options_.replay.empty()) return false;
  if (moe_index(plan.layer) < 0) throw Error("offload: routing asked ahead for layer " + std::to_string(plan.layer) + ", which is not a MoE layer");
  if (static_cast<size_t>(plan.tokens) != seq_.size() || plan.k != options_.k) {
    throw Error("offload: routing asked ahead for " + std::to_string(plan.tokens) + " rows but the session announced " + std::to_string(seq_.size()));
  }
  const size_t n = static_cast<size_t>(plan.tokens) * plan.k;
  plan.expert.resize(n);
  plan.weight.resize(n);
  replay_plan(plan);
  return true;
}

void OffloadController::replay_plan(MoePlan& plan) const {
  const int L = static_cast<int>(options_.moe_layers.size()), k = options_.k, mi = moe_index(plan.layer);
  for (int r = 0; r < plan.tokens; ++r) {
    const int g = seq_[static_cast<size_t>(r)], p = pos_[static_cast<size_t>(r)];
    if (g < 0 || static_cast<size_t>(g) >= options_.replay.size()) {
      throw Error("routing replay: the trace has " + std::to_string(options_.replay.size()) + " sequences; prompt " + std::to_string(g) + " has none");
    }
    const ReplaySequence& s = options_.replay[static_cast<size_t>(g)];
    if (p >= s.length) {
      throw Error("routing replay: trace sequence " + std::to_string(g) + " has " + std::to_string(s.length) + " tokens; position " + std::to_string(p) +
                  " is beyond it");
    }
    const size_t src = (static_cast<size_t>(p) * L + mi) * k, dst = static_cast<size_t>(r) * k;
    for (int j = 0; j < k; ++j) {
      plan.expert[dst + j] = s.experts[src + j];
      plan.weight[dst + j] = s.weights[src + j];
    }
  }
}

// The simulator's steps: a decode forward is one step (one token per lane); a prefill forward is one
// step per position (the rows at position p of every prompt form step p, as lanes of equal-length
// prompts do in the simulator's replay). Each step's request set is the union of its rows' experts.
void OffloadController::account(int mi, const MoePlan& plan, int& hits, int& misses) {
  const int T = plan.tokens, k = plan.k;
  row_order_.resize(static_cast<size_t>(T));
  for (int r = 0; r < T; ++r) row_order_[static_cast<size_t>(r)] = r;
  if (phase_ == 0) std::stable_sort(row_order_.begin(), row_order_.end(), [&](int32_t a, int32_t b) { return pos_[a] < pos_[b]; });
  const int32_t p0 = phase_ == 0 && T > 0 ? pos_[static_cast<size_t>(row_order_[0])] : 0;
  set_.resize(static_cast<size_t>(options_.num_experts));
  if (prefetching() && phase_ == 0) predict_prefill_rows(mi);  // predicted: this layer's ids for every row
  for (int a = 0; a < T;) {
    int b = a + 1;
    if (phase_ == 0) {
      while (b < T && pos_[static_cast<size_t>(row_order_[b])] == pos_[static_cast<size_t>(row_order_[a])]) ++b;
    } else {
      b = T;
    }
    const int32_t step = phase_ == 0 ? cache_step_ + (pos_[static_cast<size_t>(row_order_[a])] - p0) : cache_step_;
    // union of the group's experts, ascending (marks are cleared again below)
    const int32_t mark = 1;
    int n = 0;
    for (int i = a; i < b; ++i) {
      const int32_t* ids = plan.expert.data() + static_cast<size_t>(row_order_[i]) * k;
      for (int j = 0; j < k; ++j) {
        if (set_mark_[static_cast<size_t>(ids[j])] == mark) continue;
        set_mark_[static_cast<size_t>(ids[j])] = mark;
        set_[static_cast<size_t>(n++)] = ids[j];
      }
    }
    std::sort(set_.begin(), set_.begin() + n);
    for (int i = 0; i < n; ++i) set_mark_[static_cast<size_t>(set_[static_cast<size_t>(i)])] = -1;
    const int32_t* next = nullptr;
    if (!planned_next_.empty()) {
      const size_t L = options_.moe_layers.size(), idx = static_cast<size_t>(step) * L + static_cast<size_t>(mi);
      if (idx + 1 >= options_.planned_offsets.size()) throw Error("belady: the run went past the planned schedule (step " + std::to_string(step) + ")");
      const int32_t o0 = options_.planned_offsets[idx], o1 = options_.planned_offsets[idx + 1];
      if (o1 - o0 != n || !std::equal(set_.begin(), set_.begin() + n, options_.planned_experts.begin() + o0)) {
        throw Error("belady: the run's request set at step " + std::to_string(step) + ", MoE layer " + std::to_string(mi) +
                    " differs from the planned one (the future it was given is not this run's)");
      }
      next = planned_next_.data() + o0;
    }
    // Prefill: this layer's prefetch for the step comes right before its requests (each layer's cache sees
    // the simulator's order; a decode forward decided it at an earlier layer: prefetch_after).
    if (prefetching() && phase_ == 0) prefetch_into(mi, step, row_order_.data() + a, b - a);
    if (prefetching()) outcomes_.resize(static_cast<size_t>(std::max(n, 1)));
    const StepCounts c = decides_misses() ? account_deciding_misses(mi, step, plan, n)
                                          : cache_->run_step(mi, step, set_.data(), n, next, prefetching() ? outcomes_.data() : nullptr);
    if (prefetching()) count_prefetch(mi, step, set_.data(), outcomes_.data(), n);
    hits += c.hits;
    misses += c.misses;
    a = b;
  }
}

// admit false (miss_policy.h), a decode forward (one cache step): the misses, ascending, with their
// token counts, go through the miss rule with the backlog the backend gave; the fetched ones are admitted,
// the CPU ones are not (the backend computes them from host memory, miss_decisions()). The simulator's
// twin: sim/src/timing/engine.ts routed() with cpuAdmit false.
StepCounts OffloadController::account_deciding_misses(int mi, int32_t step, const MoePlan& plan, int n) {
  const int k = plan.k;
  expert_tokens_.assign(static_cast<size_t>(options_.num_experts), 0);
  for (size_t i = 0; i < static_cast<size_t>(plan.tokens) * k; ++i) ++expert_tokens_[static_cast<size_t>(plan.expert[i])];
  LayerMissDecisions& d = layer_decisions_;
  d.layer = plan.layer;
  d.copy_backlog_ms = copy_backlog_.for_experts(set_.data(), n);  // the step's set: its late prefetches count
  auto decide = [&](const std::vector<int32_t>& misses, std::vector<uint8_t>& admit) {
    d.experts = misses;
    d.tokens.resize(misses.size());
    for (size_t i = 0; i < misses.size(); ++i) d.tokens[i] = expert_tokens_[static_cast<size_t>(misses[i])];
    cpu_free_.assign(static_cast<size_t>(std::max(1, options_.miss.workers)), 0.0);  // a layer waits for all its experts
    decide_misses(options_.miss, d.copy_backlog_ms, cpu_free_, d.tokens, d.decisions, cpu_correction_.factor);
    for (size_t i = 0; i < misses.size(); ++i) admit[i] = d.decisions[i].on_cpu ? 0 : 1;
  };
  d.experts.clear();
  d.tokens.clear();
  d.decisions.clear();
  return cache_->run_step_deciding_misses(mi, step, set_.data(), n, decide, prefetching() ? outcomes_.data() : nullptr);
}

void OffloadController::record_plan(int mi, const MoePlan& plan, int hits, int misses) {
  const int T = plan.tokens, k = plan.k, E = options_.num_experts;
  const bool last = mi + 1 == static_cast<int>(options_.moe_layers.size());
  const RecordOptions& ro = options_.record_options;
  if (ro.scores && !scores_ready_) throw Error("offload: router scores of layer " + std::to_string(plan.layer) + " were not seen (debug hook not installed?)");
  if (ro.gate_next && !last && !gate_ready_) throw Error("offload: gate_next of layer " + std::to_string(plan.layer) + " was not computed (debug hook not installed?)");
  layer_first_row_ = rows_.rows();
  for (int r = 0; r < T; ++r) {
    rows_.step.push_back(forward_step_);
    rows_.phase.push_back(static_cast<uint8_t>(phase_ == 0 ? 0 : 1));
    rows_.layer.push_back(static_cast<uint16_t>(plan.layer));
    rows_.seq.push_back(seq_[static_cast<size_t>(r)]);
    rows_.pos.push_back(pos_[static_cast<size_t>(r)]);
    rows_.token.push_back(tokens_[static_cast<size_t>(r)]);
    rows_.experts.insert(rows_.experts.end(), plan.expert.begin() + static_cast<size_t>(r) * k, plan.expert.begin() + static_cast<size_t>(r + 1) * k);
    rows_.weights.insert(rows_.weights.end(), plan.weight.begin() + static_cast<size_t>(r) * k, plan.weight.begin() + static_cast<size_t>(r + 1) * k);
    if (ro.scores) rows_.scores.insert(rows_.scores.end(), scores_.begin() + static_cast<size_t>(r) * E, scores_.begin() + static_cast<size_t>(r + 1) * E);
    if (ro.gate_next) {
      if (last) rows_.gate_next.insert(rows_.gate_next.end(), static_cast<size_t>(k), 0);
      else rows_.gate_next.insert(rows_.gate_next.end(), gate_idx_.begin() + static_cast<size_t>(r) * k, gate_idx_.begin() + static_cast<size_t>(r + 1) * k);
      rows_.gate_next_valid.push_back(last ? 0 : 1);
    }
    rows_.layer_us.push_back(0.f);  // filled at the layer's end (ffn_out)
    rows_.hits.push_back(static_cast<uint16_t>(std::min(hits, 65535)));
    rows_.misses.push_back(static_cast<uint16_t>(std::min(misses, 65535)));
  }
  scores_ready_ = gate_ready_ = false;
}

DebugHook OffloadController::make_hook() {
  return [this](const char* name, int layer, const float* data, int rows, int cols) {
    on_hook(name, layer, data, rows, cols);
    if (user_hook_) user_hook_(name, layer, data, rows, cols);
  };
}

void OffloadController::on_hook(const char* name, int layer, const float* data, int rows, int cols) {
  const bool host_gate = prefetching() && options_.prefetch.host_gate;
  if (!options_.record && !host_gate) return;
  const int mi = moe_index(layer);
  if (mi < 0) return;
  const std::string n(name);
  const int E = options_.num_experts, k = options_.k;
  if (n == "ffn_norm") {
    // The MoE block's input (what this layer's router sees): apply the next MoE layer's router to it.
    if ((host_gate || (options_.record && options_.record_options.gate_next)) && mi + 1 < static_cast<int>(options_.moe_layers.size())) {
      const Matrix& router = options_.weights->layers[static_cast<size_t>(options_.moe_layers[static_cast<size_t>(mi) + 1])].router;
      if (router.cols != cols) throw Error("offload: gate_next: router width differs from the hidden size");
      gate_logits_.resize(static_cast<size_t>(rows) * E);
      gate_idx_.resize(static_cast<size_t>(rows) * k);
      gate_weight_.resize(static_cast<size_t>(rows) * k);
      linear(data, rows, router, gate_logits_.data(), pool_.get());
      route_topk(gate_logits_.data(), rows, E, k, options_.norm_topk_prob, options_.routed_scaling_factor, gate_idx_.data(), gate_weight_.data());
      gate_ready_ = true;
      if (host_gate) on_gate_next(layer, gate_idx_.data(), rows, k);
    }
    overhead_us_ = 0;
    moe_start_ = std::chrono::steady_clock::now();
  } else if (n == "router_logits") {
    const auto t0 = std::chrono::steady_clock::now();
    if (options_.record_options.scores) {
      // The same float softmax as route_topk, so the top-k of the recorded scores is the router's choice.
      scores_.resize(static_cast<size_t>(rows) * E);
      for (int r = 0; r < rows; ++r) {
        const float* lg = data + static_cast<size_t>(r) * cols;
        float* s = scores_.data() + static_cast<size_t>(r) * E;
        const float mx = *std::max_element(lg, lg + E);
        float sum = 0.f;
        for (int e = 0; e < E; ++e) {
          s[e] = std::exp(lg[e] - mx);
          sum += s[e];
        }
        for (int e = 0; e < E; ++e) s[e] /= sum;
      }
      scores_ready_ = true;
    }
    overhead_us_ += micros_since(t0);
  } else if (n == "ffn_out") {
    // Wall time of the MoE block (router, routed and shared experts), less the recorder's own work.
    const float us = static_cast<float>(std::max(0.0, micros_since(moe_start_) - overhead_us_));
    for (size_t r = layer_first_row_; r < rows_.layer_us.size(); ++r) rows_.layer_us[r] = us;
  }
}

OffloadSession::OffloadSession(Engine& engine, std::unique_ptr<OffloadController> controller) : engine_(engine), controller_(std::move(controller)) {
  engine_.set_moe_interceptor(controller_.get());
  if (controller_->needs_hook()) engine_.set_debug_hook(controller_->make_hook());
}

OffloadSession::~OffloadSession() {
  engine_.set_moe_interceptor(nullptr);
  engine_.set_debug_hook(nullptr);
}

void OffloadSession::set_user_hook(DebugHook hook) {
  if (controller_->needs_hook()) controller_->set_user_hook(std::move(hook));
  else engine_.set_debug_hook(std::move(hook));
}

StepOutput OffloadSession::begin(const GenerationRequest& request) {
  sequence_base_ += batch_size_;
  batch_size_ = 0;
  const size_t n = request.prompts.size();
  std::vector<int32_t> seq, pos, tokens;
  for (size_t s = 0; s < n; ++s) {
    for (size_t i = 0; i < request.prompts[s].size(); ++i) {
      seq.push_back(sequence_base_ + static_cast<int32_t>(s));
      pos.push_back(static_cast<int32_t>(i));
      tokens.push_back(request.prompts[s][i]);
    }
  }
  controller_->begin_forward(0, seq, pos, tokens);
  StepOutput out;
  try {
    out = engine_.begin(request);
  } catch (...) {
    controller_->abort_forward();
    throw;
  }
  controller_->end_forward();
  batch_size_ = static_cast<int>(n);
  length_.resize(n);
  for (size_t s = 0; s < n; ++s) length_[s] = static_cast<int32_t>(request.prompts[s].size());
  last_token_ = out.token;
  finish_ = out.finish;
  return out;
}

void OffloadSession::score(const std::vector<std::vector<int32_t>>& sequences, int prefill_tokens) {
  sequence_base_ += batch_size_;
  batch_size_ = 0;
  finish_.clear();  // score ends any generation: a step() after it has no rows
  const int32_t base = sequence_base_;
  engine_.score(sequences, prefill_tokens, [&](const StepBatch& batch, bool prefill, const std::function<void()>& forward) {
    std::vector<int32_t> seq(batch.seq.size());
    for (size_t i = 0; i < seq.size(); ++i) seq[i] = base + batch.seq[i];
    controller_->begin_forward(prefill ? 0 : 1, seq, batch.pos, batch.tokens);
    try {
      forward();
    } catch (...) {
      controller_->abort_forward();
      throw;
    }
    controller_->end_forward();
  });
  batch_size_ = static_cast<int>(sequences.size());
}

StepOutput OffloadSession::step() {
  std::vector<int32_t> seq, pos, tokens;
  for (size_t s = 0; s < finish_.size(); ++s) {
    if (finish_[s] != FinishReason::Running) continue;
    seq.push_back(sequence_base_ + static_cast<int32_t>(s));
    pos.push_back(length_[s]);
    tokens.push_back(last_token_[s]);
  }
  controller_->begin_forward(1, seq, pos, tokens);
  StepOutput out;
  try {
    out = engine_.step();
  } catch (...) {
    controller_->abort_forward();
    throw;
  }
  controller_->end_forward();
  for (size_t s = 0; s < finish_.size(); ++s) {
    if (finish_[s] == FinishReason::Running) ++length_[s];
    if (out.token[s] >= 0) last_token_[s] = out.token[s];
  }
  finish_ = out.finish;
  return out;
}

}  // namespace offload
}  // namespace moe
