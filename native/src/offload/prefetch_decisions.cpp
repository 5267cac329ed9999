// The prefetch decisions of OffloadController (issue 12): the C++ twin of sim/src/timing/engine.ts
// issuePrefetch / issuePrefetchesAfter and of the prefetch sets of sim/src/prefetch/sources.ts. Only the
// decisions live here (cache state and counts); a GPU backend turns prefetch_orders() into copies.
// Each MoE layer's cache sees, per step, the prefetch of P(s, t) right before the requests of R(s, t), as
// in the simulator; layers' caches are independent, so a decode forward that decides layer t's prefetch at
// layer t - lookahead, and a prefill forward that decides it inside layer t's accounting, give the same
// decisions (runtime/test/offload/prefetch-twin.test.ts compares them with the simulator's).
#include <algorithm>
#include <chrono>
#include <thread>
#include <string>

#include "moe/error.h"
#include "moe/offload/offload_controller.h"

namespace moe {
namespace offload {

void OffloadController::check_prefetch_options() {
  const PrefetchOptions& p = options_.prefetch;
  const int L = static_cast<int>(options_.moe_layers.size()), E = options_.num_experts;
  if (p.source == PrefetchSource::None) return;
  if (!cache_) throw Error("option --prefetch " + p.name + ": needs an expert cache (--cache C or --gpu-memory SIZE)");
  if (p.lookahead < 1 || p.lookahead > 64) throw Error("option --prefetch-lookahead: " + std::to_string(p.lookahead) + " must be from 1 to 64");
  if (p.pieces < 1 || p.max_in_flight < 1) throw Error("offload spec: prefetch pieces and maxInFlight must be >= 1");
  if (p.source == PrefetchSource::NextGate && p.lookahead != 1) throw Error("option --prefetch next-gate: its lookahead is 1 layer");
  if (p.source == PrefetchSource::Table) {
    if (p.width < 1) throw Error("offload spec: prefetch table width must be >= 1");
    for (size_t g = 0; g < p.table.size(); ++g) {
      if (p.table[g].size() % (static_cast<size_t>(L) * p.width) != 0) {
        throw Error("offload spec: prefetch table of sequence " + std::to_string(g) + " is not a whole number of positions");
      }
      for (int32_t e : p.table[g]) {
        if (e < -1 || e >= E) throw Error("offload spec: prefetch table of sequence " + std::to_string(g) + " names expert " + std::to_string(e));
      }
    }
  }
  if (p.source == PrefetchSource::Predictor) {
    if (!p.predictor) throw Error("offload spec: prefetch predicted needs its predictor");
    const PredictorModel& m = p.predictor->model();
    if (m.moe_layers != L || m.num_experts != E || m.top_k != options_.k) {
      throw Error("option --predictor: trained for " + std::to_string(m.moe_layers) + " MoE layers x " + std::to_string(m.num_experts) + " experts, top-" + std::to_string(m.top_k) +
                  "; the model has " + std::to_string(L) + " x " + std::to_string(E) + ", top-" + std::to_string(options_.k));
    }
    if (m.lookahead != p.lookahead) throw Error("offload spec: prefetch predicted's lookahead differs from its predictor's");
    if (options_.replay.empty()) throw Error("option --prefetch predicted: needs a routing replay (--routing F): the predictor's inputs are the replayed routing");
    pf_ids_.resize(static_cast<size_t>(m.budget));
    pf_pool_ = std::make_unique<ThreadPool>(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    pf_scratch_.clear();
    for (int i = 0; i < pf_pool_->size(); ++i) pf_scratch_.push_back(p.predictor->make_scratch());
  }
  prefetched_for_.assign(static_cast<size_t>(L) * E, -1);
  prefetch_victim_at_.assign(static_cast<size_t>(L) * E, -1);
  gate_ids_.assign(static_cast<size_t>(L), {});
}

int OffloadController::gate_next_layer(int layer) const {
  if (!prefetching() || options_.prefetch.source != PrefetchSource::NextGate || options_.prefetch.host_gate) return -1;
  const int mi = moe_index(layer);
  if (mi < 0 || mi + 1 >= static_cast<int>(options_.moe_layers.size())) return -1;
  return options_.moe_layers[static_cast<size_t>(mi) + 1];
}

void OffloadController::on_gate_next(int layer, const int32_t* ids, int rows, int k) {
  const int mi = moe_index(layer);
  if (mi < 0 || !prefetching() || options_.prefetch.source != PrefetchSource::NextGate) return;
  if (k != options_.k) throw Error("prefetch next-gate: gate top-k width differs from the model's k");
  if (static_cast<size_t>(rows) != seq_.size()) throw Error("prefetch next-gate: gate rows differ from the forward's rows");
  gate_ids_[static_cast<size_t>(mi)].assign(ids, ids + static_cast<size_t>(rows) * k);
}

// sim issuePrefetchesAfter(-1): a decode step's start decides the layers before the lookahead.
void OffloadController::prefetch_step_start() {
  orders_.clear();
  if (phase_ == 0) return;
  const int L = static_cast<int>(options_.moe_layers.size());
  pf_rows_.resize(seq_.size());
  for (size_t r = 0; r < seq_.size(); ++r) pf_rows_[r] = static_cast<int32_t>(r);
  for (int t = 0; t < std::min(L, options_.prefetch.lookahead); ++t) prefetch_into(t, cache_step_, pf_rows_.data(), static_cast<int>(pf_rows_.size()));
}

// sim issuePrefetchesAfter(l): after a decode layer's routing, the layer `lookahead` ahead.
void OffloadController::prefetch_after(int mi) {
  const int t = mi + options_.prefetch.lookahead;
  if (t >= static_cast<int>(options_.moe_layers.size())) return;
  pf_rows_.resize(seq_.size());
  for (size_t r = 0; r < seq_.size(); ++r) pf_rows_[r] = static_cast<int32_t>(r);
  prefetch_into(t, cache_step_, pf_rows_.data(), static_cast<int>(pf_rows_.size()));
}

// sim issuePrefetch(t) for one step, the set built from the given rows of the forward.
void OffloadController::prefetch_into(int t, int32_t step, const int32_t* rows, int nrows) {
  const PrefetchOptions& p = options_.prefetch;
  const int L = static_cast<int>(options_.moe_layers.size()), E = options_.num_experts, k = options_.k;
  pf_set_.resize(static_cast<size_t>(E));
  int n = 0;
  auto visit = [&](int32_t e) {
    if (e < 0 || set_mark_[static_cast<size_t>(e)] == 1) return;
    set_mark_[static_cast<size_t>(e)] = 1;
    pf_set_[static_cast<size_t>(n++)] = e;
  };
  if (p.source == PrefetchSource::NextGate) {
    if (t == 0) return;  // nothing predicts the first MoE layer
    const std::vector<int32_t>& g = gate_ids_[static_cast<size_t>(t) - 1];
    if (g.size() != seq_.size() * static_cast<size_t>(k)) {
      throw Error("prefetch next-gate: no gate ids from MoE layer " + std::to_string(t - 1) + " for this forward (internal: the backend did not compute them)");
    }
    for (int i = 0; i < nrows; ++i) {
      for (int j = 0; j < k; ++j) visit(g[static_cast<size_t>(rows[i]) * k + j]);
    }
  } else if (p.source == PrefetchSource::Predictor) {
    if (t - p.lookahead < 0) return;  // nothing runs k layers before the first k layers
    const int budget = p.predictor->model().budget;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < nrows; ++i) {
      const int r = rows[i];
      if (phase_ == 0) {  // predict_prefill_rows computed this layer's rows
        const int32_t* ids = pf_prefill_ids_.data() + static_cast<size_t>(r) * budget;
        for (int j = 0; j < pf_prefill_count_[static_cast<size_t>(r)]; ++j) visit(ids[j]);
        continue;
      }
      const int got = predict_row(r, t - p.lookahead, pf_scratch_[0], pf_ids_.data());
      for (int j = 0; j < got; ++j) visit(pf_ids_[static_cast<size_t>(j)]);
    }
    if (phase_ != 0) {
      prefetch_stats_.infer_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      prefetch_stats_.infer_predictions += nrows;
    }
  } else {
    const int w = p.width;
    for (int i = 0; i < nrows; ++i) {
      const int r = rows[i];
      const int g = seq_[static_cast<size_t>(r)], pos = pos_[static_cast<size_t>(r)];
      if (g < 0 || static_cast<size_t>(g) >= p.table.size()) {
        throw Error("prefetch " + p.name + ": the plan has " + std::to_string(p.table.size()) + " sequences; prompt " + std::to_string(g) + " has none");
      }
      const std::vector<int32_t>& tab = p.table[static_cast<size_t>(g)];
      const size_t base = (static_cast<size_t>(pos) * L + t) * w;
      if (base + w > tab.size()) {
        throw Error("prefetch " + p.name + ": sequence " + std::to_string(g) + " has no prediction for position " + std::to_string(pos));
      }
      for (int j = 0; j < w; ++j) visit(tab[base + j]);
    }
  }
  for (int i = 0; i < n; ++i) set_mark_[static_cast<size_t>(pf_set_[static_cast<size_t>(i)])] = -1;
  if (n == 0) return;
  std::sort(pf_set_.begin(), pf_set_.begin() + n);
  LayerCache& cache = cache_->layer(t);
  cache.begin_step(step, pf_set_.data(), n);
  for (int i = 0; i < n; ++i) {
    const int e = pf_set_[static_cast<size_t>(i)];
    const CacheOutcome o = cache.prefetch(e);
    if (o.code == kOutcomeHit) {
      ++prefetch_stats_.already;
      continue;
    }
    if (o.code == kOutcomeBypass) {
      ++prefetch_stats_.dropped;
      continue;
    }
    if (o.code == kOutcomeEvict) prefetch_victim_at_[static_cast<size_t>(t) * E + o.victim] = step;
    ++prefetch_stats_.issued;
    prefetched_for_[static_cast<size_t>(t) * E + e] = step;
    // A prefill forward moves what the cache holds at its layer's placement (no separate copies).
    if (phase_ != 0) orders_.push_back(PrefetchOrder{t, e, o.slot, step});
  }
}

// predicted: the ids of row r of the forward for MoE layer i_src + lookahead, from the replayed routing.
int OffloadController::predict_row(int r, int i_src, PredictorScratch& scratch, int32_t* out) const {
  const int g = seq_[static_cast<size_t>(r)], pos = pos_[static_cast<size_t>(r)];
  if (g < 0 || static_cast<size_t>(g) >= options_.replay.size()) {
    throw Error("prefetch predicted: the replay has " + std::to_string(options_.replay.size()) + " sequences; prompt " + std::to_string(g) + " has none");
  }
  const ReplaySequence& rs = options_.replay[static_cast<size_t>(g)];
  return options_.prefetch.predictor->predict(scratch, rs.experts.data(), rs.weights.data(), rs.length, pos, i_src, out);
}

// predicted, a prefill forward: every row's ids for MoE layer `target`, before the layer's per-position cache
// steps consume them (prefetch_into). The rows are independent, so the pool computes them at once; a decode
// forward's few rows are predicted one after another in prefetch_into.
void OffloadController::predict_prefill_rows(int target) {
  const PrefetchOptions& p = options_.prefetch;
  if (p.source != PrefetchSource::Predictor || target - p.lookahead < 0) return;
  const int budget = p.predictor->model().budget;
  const int64_t rows = static_cast<int64_t>(seq_.size());
  pf_prefill_ids_.resize(static_cast<size_t>(rows) * budget);
  pf_prefill_count_.resize(static_cast<size_t>(rows));
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t threads = pf_pool_->size();
  const int64_t per = (rows + threads - 1) / threads;
  pf_pool_->parallel_for(threads, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      for (int64_t r = c * per; r < std::min(rows, (c + 1) * per); ++r) {
        pf_prefill_count_[static_cast<size_t>(r)] = predict_row(static_cast<int>(r), target - p.lookahead, pf_scratch_[static_cast<size_t>(c)], pf_prefill_ids_.data() + static_cast<size_t>(r) * budget);
      }
    }
  });
  prefetch_stats_.prefill_infer_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  prefetch_stats_.prefill_infer_predictions += rows;
}

// After the requests of (step, t): useful = hits on experts prefetched for this step; needed = requests
// not cached before the prefetch = misses (less those the prefetch itself evicted) + useful (sim: needed).
void OffloadController::count_prefetch(int t, int32_t step, const int32_t* set, const CacheOutcome* outcomes, int n) {
  const size_t base = static_cast<size_t>(t) * options_.num_experts;
  for (int i = 0; i < n; ++i) {
    const size_t key = base + static_cast<size_t>(set[i]);
    if (outcomes[i].code == kOutcomeHit) {
      if (prefetched_for_[key] == step) {
        ++prefetch_stats_.useful;
        ++prefetch_stats_.needed;
      }
    } else if (prefetch_victim_at_[key] != step) {
      ++prefetch_stats_.needed;
    }
  }
}

}  // namespace offload
}  // namespace moe
