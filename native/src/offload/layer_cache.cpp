// The C++ twin of sim/src/cache/{layer-cache,lru,lfu,fifo,lfru,belady,static}.ts. Each rule below
// names the TypeScript it mirrors; keep the two in step (the twin test fails otherwise).
#include "moe/offload/layer_cache.h"

#include <algorithm>
#include <string>

#include "moe/error.h"

namespace moe {
namespace offload {

namespace {

const char* const kPolicyNames[] = {"lru", "lfu", "fifo", "lfru", "belady", "static", "opt"};

// LFRU decay powers precomputed at construction: d^n underflows to exactly 0 after a few thousand
// steps for the default d, and the table stops there; for d very close to 1 it stops at this many
// entries and grows on demand (the only allocation after construction, when a gap is that long).
constexpr size_t kDecayTablePrecomputed = 1u << 16;

}  // namespace

const char* policy_name(CachePolicy p) { return kPolicyNames[static_cast<int>(p)]; }

CachePolicy parse_policy(const std::string& name) {
  for (int i = 0; i < 7; ++i) {
    if (name == kPolicyNames[i]) return static_cast<CachePolicy>(i);
  }
  throw Error("unknown cache policy '" + name + "' (known: lru, lfu, fifo, lfru, belady, opt, static)");
}

LayerCache::LayerCache(int num_experts, int capacity, CachePolicy policy, const LayerCacheOptions& options)
    : num_experts_(num_experts), capacity_(capacity), policy_(policy), evicts_(policy != CachePolicy::Static) {
  if (num_experts < 1) throw Error("expert cache: num_experts must be >= 1, got " + std::to_string(num_experts));
  // capacity 0 is allowed (the simulator's twin allows it too): every request bypasses.
  if (capacity < 0) throw Error("cache capacity must be a non-negative integer, got " + std::to_string(capacity));
  const size_t E = static_cast<size_t>(num_experts);
  slots_.assign(static_cast<size_t>(capacity), -1);
  slot_of_.assign(E, -1);
  protected_at_.assign(E, 0);
  last_access_.assign(E, -1);
  inserted_at_.assign(E, -1);
  switch (policy) {
    case CachePolicy::Lru:
    case CachePolicy::Fifo:
      prev_.assign(E, -1);
      next_.assign(E, -1);
      break;
    case CachePolicy::Lfu:
      counts_.assign(E, 0.0);
      break;
    case CachePolicy::Lfru: {
      decay_ = options.lfru_decay;
      if (!(decay_ > 0 && decay_ <= 1)) throw Error("lfru decay must be in (0, 1], got " + std::to_string(decay_));
      crf_.assign(E, 0.0);
      last_step_.assign(E, 0);
      // lfru.ts decayOver: D[0] = 1, D[n] = D[n-1] * d (float64 products, never pow()).
      pow_.reserve(kDecayTablePrecomputed);
      pow_.push_back(1.0);
      while (pow_.size() < kDecayTablePrecomputed && pow_.back() != 0.0) pow_.push_back(pow_.back() * decay_);
      break;
    }
    case CachePolicy::Belady:
    case CachePolicy::Opt:
      next_use_.assign(E, kNever);
      break;
    case CachePolicy::Static:
      break;
  }
  if (policy == CachePolicy::Static) {
    if (options.pinned.size() > static_cast<size_t>(capacity)) {
      throw Error("static: " + std::to_string(options.pinned.size()) + " pinned experts exceed capacity " + std::to_string(capacity));
    }
    for (int e : options.pinned) {
      check_expert(e, "static: pinned expert");
      if (slot_of_[static_cast<size_t>(e)] >= 0) throw Error("static: expert " + std::to_string(e) + " is pinned twice");
      insert_free(e);
    }
  } else if (!options.pinned.empty()) {
    throw Error("pinned experts are for the static policy only");
  }
}

void LayerCache::check_expert(int expert, const char* what) const {
  if (expert < 0 || expert >= num_experts_) {
    throw Error(std::string(what) + " " + std::to_string(expert) + " is outside [0, " + std::to_string(num_experts_) + ")");
  }
}

void LayerCache::begin_step(int32_t step, const int32_t* requests, int n) {
  if (step < step_) throw Error("expert cache: steps must not go backwards (" + std::to_string(step) + " after " + std::to_string(step_) + ")");
  for (int i = 0; i < n; ++i) {
    check_expert(requests[i], "expert cache: requested expert");
    if (i > 0 && requests[i] <= requests[i - 1]) throw Error("expert cache: a step's request set must be ascending without repeats");
  }
  step_ = step;
  ++stamp_;
  for (int i = 0; i < n; ++i) protected_at_[static_cast<size_t>(requests[i])] = stamp_;
}

void LayerCache::protect(const int32_t* experts, int n) {
  for (int i = 0; i < n; ++i) {
    check_expert(experts[i], "expert cache: protected expert");
    protected_at_[static_cast<size_t>(experts[i])] = stamp_;
  }
}

double LayerCache::decay_over(int32_t n) const {
  const size_t i = static_cast<size_t>(n);
  if (i < pow_.size()) return pow_[i];
  if (pow_.back() == 0.0) return 0.0;  // every later product is 0 too
  while (pow_.size() <= i) pow_.push_back(pow_.back() * decay_);
  return pow_[i];
}

// layer-cache.ts request()
CacheOutcome LayerCache::request(int expert, int32_t next_use) {
  check_expert(expert, "expert cache: requested expert");
  const size_t e = static_cast<size_t>(expert);
  if (protected_at_[e] != stamp_ || step_ < 0) {
    throw Error("expert cache: expert " + std::to_string(expert) + " requested outside the current step's request set");
  }
  switch (policy_) {
    case CachePolicy::Lfu:
      counts_[e] += 1.0;  // lfu.ts requested()
      break;
    case CachePolicy::Lfru:  // lfru.ts requested(): CRF = 1 + CRF * d^(now - last)
      crf_[e] = 1.0 + crf_[e] * decay_over(step_ - last_step_[e]);
      last_step_[e] = step_;
      break;
    case CachePolicy::Belady:  // belady.ts requested()
    case CachePolicy::Opt:
      next_use_[e] = next_use;
      break;
    default:
      break;
  }
  if (slot_of_[e] >= 0) {
    last_access_[e] = clock_++;
    if (policy_ == CachePolicy::Lru) {  // lru.ts accessed(): move to the newest end
      if (tail_ != expert) {
        list_remove(expert);
        list_append(expert);
      }
    }
    return CacheOutcome{kOutcomeHit, slot_of_[e], kNoVictim};
  }
  return admit(expert);
}

// layer-cache.ts prefetch()
CacheOutcome LayerCache::prefetch(int expert) {
  check_expert(expert, "expert cache: prefetched expert");
  if (slot_of_[static_cast<size_t>(expert)] >= 0) return CacheOutcome{kOutcomeHit, slot_of_[static_cast<size_t>(expert)], kNoVictim};
  return admit(expert);
}

// layer-cache.ts admit()
CacheOutcome LayerCache::admit(int expert) {
  if (!evicts_) return CacheOutcome{};
  if (used_ < capacity_) {
    insert_free(expert);
    return CacheOutcome{kOutcomeInsert, slot_of_[static_cast<size_t>(expert)], kNoVictim};
  }
  const int victim = pick_victim();
  if (victim < 0) return CacheOutcome{};
  // opt declines to admit an expert needed no sooner than the victim (belady.ts admitsOver).
  if (policy_ == CachePolicy::Opt && !(next_use_[static_cast<size_t>(expert)] < next_use_[static_cast<size_t>(victim)])) return CacheOutcome{};
  const size_t v = static_cast<size_t>(victim);
  const int slot = slot_of_[v];
  slot_of_[v] = -1;
  inserted_at_[v] = -1;
  if (policy_ == CachePolicy::Lru || policy_ == CachePolicy::Fifo) list_remove(victim);
  slots_[static_cast<size_t>(slot)] = expert;
  slot_of_[static_cast<size_t>(expert)] = slot;
  note_insertion(expert);
  return CacheOutcome{kOutcomeEvict, slot, victim};
}

void LayerCache::insert_free(int expert) {
  const int slot = used_++;
  slots_[static_cast<size_t>(slot)] = expert;
  slot_of_[static_cast<size_t>(expert)] = slot;
  note_insertion(expert);
}

void LayerCache::note_insertion(int expert) {
  inserted_at_[static_cast<size_t>(expert)] = clock_;
  last_access_[static_cast<size_t>(expert)] = clock_++;
  if (policy_ == CachePolicy::Lru || policy_ == CachePolicy::Fifo) list_append(expert);
}

int LayerCache::pick_victim() const {
  switch (policy_) {
    case CachePolicy::Lru:
    case CachePolicy::Fifo:
      // lru.ts / fifo.ts: the oldest unprotected expert of the recency (insertion) list.
      return list_oldest_unprotected();
    case CachePolicy::Lfu: {
      // lfu.ts: fewest requests, then least recent access, then lowest id.
      int victim = -1;
      double vc = 0;
      int64_t vr = 0;
      for (int s = 0; s < used_; ++s) {
        const int e = slots_[static_cast<size_t>(s)];
        if (protected_at_[static_cast<size_t>(e)] == stamp_) continue;
        const double c = counts_[static_cast<size_t>(e)];
        const int64_t r = last_access_[static_cast<size_t>(e)];
        if (victim < 0 || c < vc || (c == vc && (r < vr || (r == vr && e < victim)))) {
          vc = c;
          vr = r;
          victim = e;
        }
      }
      return victim;
    }
    case CachePolicy::Lfru: {
      // lfru.ts: smallest CRF * d^(now - last), then least recent access, then lowest id.
      int victim = -1;
      double vv = 0;
      int64_t vr = 0;
      for (int s = 0; s < used_; ++s) {
        const int e = slots_[static_cast<size_t>(s)];
        if (protected_at_[static_cast<size_t>(e)] == stamp_) continue;
        const double v = crf_[static_cast<size_t>(e)] * decay_over(step_ - last_step_[static_cast<size_t>(e)]);
        const int64_t r = last_access_[static_cast<size_t>(e)];
        if (victim < 0 || v < vv || (v == vv && (r < vr || (r == vr && e < victim)))) {
          vv = v;
          vr = r;
          victim = e;
        }
      }
      return victim;
    }
    case CachePolicy::Belady:
    case CachePolicy::Opt: {
      // belady.ts: next request farthest away (never = kNever), ties to the lowest id.
      int victim = -1;
      int32_t farthest = -1;
      for (int s = 0; s < used_; ++s) {
        const int e = slots_[static_cast<size_t>(s)];
        if (protected_at_[static_cast<size_t>(e)] == stamp_) continue;
        const int32_t n = next_use_[static_cast<size_t>(e)];
        if (victim < 0 || n > farthest || (n == farthest && e < victim)) {
          farthest = n;
          victim = e;
        }
      }
      return victim;
    }
    case CachePolicy::Static:
      return -1;
  }
  return -1;
}

// recency-list.ts
void LayerCache::list_append(int e) {
  prev_[static_cast<size_t>(e)] = tail_;
  next_[static_cast<size_t>(e)] = -1;
  if (tail_ >= 0) next_[static_cast<size_t>(tail_)] = e;
  else head_ = e;
  tail_ = e;
}

void LayerCache::list_remove(int e) {
  const int32_t p = prev_[static_cast<size_t>(e)], n = next_[static_cast<size_t>(e)];
  if (p >= 0) next_[static_cast<size_t>(p)] = n;
  else head_ = n;
  if (n >= 0) prev_[static_cast<size_t>(n)] = p;
  else tail_ = p;
  prev_[static_cast<size_t>(e)] = -1;
  next_[static_cast<size_t>(e)] = -1;
}

int LayerCache::list_oldest_unprotected() const {
  int32_t e = head_;
  while (e >= 0 && protected_at_[static_cast<size_t>(e)] == stamp_) e = next_[static_cast<size_t>(e)];
  return e;
}

std::vector<int> LayerCache::contents() const {
  std::vector<int> out(slots_.begin(), slots_.begin() + used_);
  std::sort(out.begin(), out.end());
  return out;
}

void LayerCache::check_invariants() const {
  if (used_ < 0 || used_ > capacity_) throw Error("expert cache invariant: " + std::to_string(used_) + " slots used of " + std::to_string(capacity_));
  int cached = 0;
  for (int e = 0; e < num_experts_; ++e) {
    const int s = slot_of_[static_cast<size_t>(e)];
    if (s < 0) continue;
    ++cached;
    if (s >= used_ || slots_[static_cast<size_t>(s)] != e) {
      throw Error("expert cache invariant: expert " + std::to_string(e) + " maps to slot " + std::to_string(s) + " which does not hold it");
    }
    if (inserted_at_[static_cast<size_t>(e)] < 0) throw Error("expert cache invariant: cached expert " + std::to_string(e) + " has no insertion time");
  }
  if (cached != used_) throw Error("expert cache invariant: " + std::to_string(cached) + " cached experts but " + std::to_string(used_) + " slots used");
  if (policy_ == CachePolicy::Lru || policy_ == CachePolicy::Fifo) {
    int n = 0;
    int64_t last = -1;
    for (int32_t e = head_; e >= 0; e = next_[static_cast<size_t>(e)]) {
      if (++n > used_ || slot_of_[static_cast<size_t>(e)] < 0) throw Error("expert cache invariant: the recency list holds an expert that is not cached");
      const int64_t t = policy_ == CachePolicy::Lru ? last_access_[static_cast<size_t>(e)] : inserted_at_[static_cast<size_t>(e)];
      if (t <= last) throw Error("expert cache invariant: the recency list is out of order");
      last = t;
    }
    if (n != used_) throw Error("expert cache invariant: the recency list lost an expert");
  }
}

}  // namespace offload
}  // namespace moe
