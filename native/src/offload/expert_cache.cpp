#include "moe/offload/expert_cache.h"

#include <string>

#include "moe/error.h"

namespace moe {
namespace offload {

ExpertCache::ExpertCache(const ExpertCacheOptions& o) {
  if (o.layers < 1) throw Error("expert cache: the model has no MoE layer");
  if (o.policy == CachePolicy::Static && o.pinned.size() != static_cast<size_t>(o.layers)) {
    throw Error("static needs pinned experts for each of the " + std::to_string(o.layers) + " MoE layers, got " + std::to_string(o.pinned.size()));
  }
  caches_.reserve(static_cast<size_t>(o.layers));
  for (int l = 0; l < o.layers; ++l) {
    LayerCacheOptions lo;
    lo.lfru_decay = o.lfru_decay;
    if (o.policy == CachePolicy::Static) lo.pinned = o.pinned[static_cast<size_t>(l)];
    caches_.emplace_back(o.num_experts, o.slots_per_layer, o.policy, lo);
  }
  stats_.assign(static_cast<size_t>(o.layers), LayerCacheStats{});
}

StepCounts ExpertCache::run_step(int l, int32_t step, const int32_t* set, int n, const int32_t* next_use, CacheOutcome* outcomes) {
  LayerCache& cache = layer(l);
  if ((cache.policy() == CachePolicy::Belady || cache.policy() == CachePolicy::Opt) && n > 0 && !next_use) {
    throw Error(std::string("expert cache: ") + policy_name(cache.policy()) + " needs the next use of every request");
  }
  LayerCacheStats& st = stats_[static_cast<size_t>(l)];
  cache.begin_step(step, set, n);
  StepCounts counts;
  for (int i = 0; i < n; ++i) {
    const CacheOutcome o = cache.request(set[i], next_use ? next_use[i] : kNever);
    if (outcomes) outcomes[i] = o;
    ++st.requests;
    switch (o.code) {
      case kOutcomeHit:
        ++st.hits;
        ++counts.hits;
        continue;
      case kOutcomeInsert:
        ++st.inserts;
        break;
      case kOutcomeEvict:
        ++st.evictions;
        break;
      default:
        ++st.bypasses;
        break;
    }
    ++counts.misses;
  }
  return counts;
}

StepCounts ExpertCache::run_step_deciding_misses(int l, int32_t step, const int32_t* set, int n, const MissChooser& decide,
                                                 CacheOutcome* outcomes) {
  LayerCache& cache = layer(l);
  if (cache.policy() == CachePolicy::Belady || cache.policy() == CachePolicy::Opt) {
    throw Error(std::string("expert cache: ") + policy_name(cache.policy()) + " cannot decide misses before admitting them (it needs every request's next use)");
  }
  LayerCacheStats& st = stats_[static_cast<size_t>(l)];
  cache.begin_step(step, set, n);
  StepCounts counts;
  misses_.clear();
  miss_index_.clear();
  for (int i = 0; i < n; ++i) {
    if (cache.slot_of(set[i]) < 0) {
      misses_.push_back(set[i]);
      miss_index_.push_back(i);
      continue;
    }
    const CacheOutcome o = cache.request(set[i], kNever);
    if (outcomes) outcomes[i] = o;
    if (o.code != kOutcomeHit) throw Error("expert cache: a cached expert's request was not a hit (internal error)");
    ++st.requests;
    ++st.hits;
    ++counts.hits;
  }
  admit_.assign(misses_.size(), 1);
  if (!misses_.empty()) decide(misses_, admit_);
  if (admit_.size() != misses_.size()) throw Error("expert cache: the miss chooser changed the number of misses (internal error)");
  for (size_t i = 0; i < misses_.size(); ++i) {
    ++st.requests;
    ++counts.misses;
    if (!admit_[i]) {
      ++st.bypasses;
      if (outcomes) outcomes[miss_index_[i]] = CacheOutcome{};
      continue;
    }
    const CacheOutcome o = cache.request(misses_[i], kNever);
    if (outcomes) outcomes[miss_index_[i]] = o;
    if (o.code == kOutcomeInsert) ++st.inserts;
    else if (o.code == kOutcomeEvict) ++st.evictions;
    else if (o.code == kOutcomeHit) throw Error("expert cache: a miss became a hit (internal error)");
    else ++st.bypasses;
  }
  return counts;
}

std::vector<int32_t> next_request_steps(int steps, int layers, int num_experts, const std::vector<int32_t>& offsets,
                                        const std::vector<int32_t>& experts) {
  if (offsets.size() != static_cast<size_t>(steps) * layers + 1) throw Error("next_request_steps: offsets do not match steps x layers");
  std::vector<int32_t> next(experts.size());
  std::vector<int32_t> upcoming(static_cast<size_t>(layers) * num_experts, kNever);
  for (int s = steps - 1; s >= 0; --s) {
    for (int l = 0; l < layers; ++l) {
      const size_t base = static_cast<size_t>(l) * num_experts;
      for (int32_t i = offsets[static_cast<size_t>(s) * layers + l]; i < offsets[static_cast<size_t>(s) * layers + l + 1]; ++i) {
        const int32_t e = experts[static_cast<size_t>(i)];
        if (e < 0 || e >= num_experts) throw Error("next_request_steps: expert " + std::to_string(e) + " out of range");
        next[static_cast<size_t>(i)] = upcoming[base + e];
        upcoming[base + e] = s;
      }
    }
  }
  return next;
}

}  // namespace offload
}  // namespace moe
