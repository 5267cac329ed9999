#pragma once
// One MoE layer's expert cache: C slots, an eviction policy and its bookkeeping. The C++ twin of the
// simulator's sim/src/cache/layer-cache.ts: the same policy names make the same decision on the same
// request sequence (same outcome, same victim), which runtime/test/offload/cache-twin.test.ts checks
// request by request. The semantics are the simulator's canonical ones (sim/README.md):
//   begin_step(step, R)  R = the step's request set at this layer (ascending ids, no repeats)
//   request(e)           for each e of R in ascending order
// A hit is an expert in the cache. A miss takes a free slot, else the policy's victim among cached
// experts not in R, else it bypasses (used without being cached). `static` never evicts.
//
// Slots are what a GPU backend maps to device buffers: slot i is buffer i of this layer's pool. A hit
// returns the expert's slot, an insert a fresh slot (0, 1, 2, ... in order), an eviction the victim's
// slot (reused). All storage is allocated in the constructor; request/prefetch allocate nothing (LFRU's
// decay table is precomputed; see decay_over). Broken invariants throw moe::Error, never abort.
#include <cstdint>
#include <string>
#include <vector>

namespace moe {
namespace offload {

// Opt: Belady's MIN with bypass (sim/src/cache/belady.ts admitsOver): admits a missed expert only when it
// is needed strictly sooner than the victim; the offline optimum when a cache may decline to admit.
enum class CachePolicy : int { Lru = 0, Lfu = 1, Fifo = 2, Lfru = 3, Belady = 4, Static = 5, Opt = 6 };

// The simulator's policy names (sim/src/cache/types.ts POLICY_NAMES).
const char* policy_name(CachePolicy p);
// Throws moe::Error listing the known names.
CachePolicy parse_policy(const std::string& name);

// Outcome codes, equal to sim/src/cache/types.ts OUTCOME_* (stable: the twin test compares them).
constexpr int kOutcomeHit = 0;
constexpr int kOutcomeInsert = 1;
constexpr int kOutcomeEvict = 2;
constexpr int kOutcomeBypass = 3;
constexpr int kNoVictim = -1;
constexpr int kNoSlot = -1;
// A next use that never comes (sim/src/cache/belady.ts NEVER).
constexpr int32_t kNever = 0x7fffffff;
// sim/src/cache/lfru.ts LFRU_DEFAULT_DECAY.
constexpr double kLfruDefaultDecay = 0.9375;

struct CacheOutcome {
  int code = kOutcomeBypass;
  int slot = kNoSlot;      // hit: the expert's slot; insert/evict: the slot it now occupies; bypass: kNoSlot
  int victim = kNoVictim;  // evict: the expert that lost the slot
};

struct LayerCacheOptions {
  std::vector<int> pinned;             // static: the pinned experts (at most capacity, distinct)
  double lfru_decay = kLfruDefaultDecay;
};

class LayerCache {
 public:
  LayerCache(int num_experts, int capacity, CachePolicy policy, const LayerCacheOptions& options = {});

  // Starts a step; `requests` (ascending, distinct, in range) are protected from eviction during it.
  void begin_step(int32_t step, const int32_t* requests, int n);
  // Adds experts to the current step's protected set (prefetch targets being brought in).
  void protect(const int32_t* experts, int n);
  // One request of the current step (e must be in the step's request set). `next_use`: the step of
  // this expert's next request at this layer, strictly later (kNever if none); read by belady and opt only.
  CacheOutcome request(int expert, int32_t next_use = kNever);
  // Brings `expert` in ahead of its request: no request is counted, the insertion is an access and
  // takes a slot by the same rule as a miss. Already cached: kOutcomeHit.
  CacheOutcome prefetch(int expert);

  bool has(int expert) const { return slot_of_.at(static_cast<size_t>(expert)) >= 0; }
  int slot_of(int expert) const { return slot_of_.at(static_cast<size_t>(expert)); }
  int expert_in_slot(int slot) const { return slots_.at(static_cast<size_t>(slot)); }
  int size() const { return used_; }
  int capacity() const { return capacity_; }
  int num_experts() const { return num_experts_; }
  CachePolicy policy() const { return policy_; }
  // Cached experts ascending (allocates: tests and logs).
  std::vector<int> contents() const;
  // Throws moe::Error when slots and the expert->slot map disagree, or a policy list lost an expert.
  void check_invariants() const;

 private:
  CacheOutcome admit(int expert);
  int pick_victim() const;
  void insert_free(int expert);
  void note_insertion(int expert);
  void check_expert(int expert, const char* what) const;
  double decay_over(int32_t n) const;
  // Recency (lru) / insertion (fifo) order: a doubly linked list over expert ids, oldest first.
  void list_append(int e);
  void list_remove(int e);
  int list_oldest_unprotected() const;

  int num_experts_;
  int capacity_;
  CachePolicy policy_;
  bool evicts_;
  std::vector<int32_t> slots_;         // slot -> expert; the first used_ are filled
  std::vector<int32_t> slot_of_;       // expert -> slot, -1 when not cached
  int used_ = 0;
  std::vector<int32_t> protected_at_;  // expert -> stamp of the step whose request set holds it
  int32_t stamp_ = 0;
  int32_t step_ = -1;
  int64_t clock_ = 0;                  // access clock: every hit and insertion takes the next value
  std::vector<int64_t> last_access_;   // expert -> clock of its last access, -1 never
  std::vector<int64_t> inserted_at_;   // expert -> clock of its current insertion, -1 when not cached
  // lru / fifo
  std::vector<int32_t> prev_, next_;
  int32_t head_ = -1, tail_ = -1;
  // lfu: requests since the start (survive eviction)
  std::vector<double> counts_;
  // lfru (LRFU): CRF per expert, step of its last request, decay table D[n] = d^n by repeated products
  double decay_ = kLfruDefaultDecay;
  std::vector<double> crf_;
  std::vector<int32_t> last_step_;
  mutable std::vector<double> pow_;  // grown only when a gap exceeds the precomputed range (see decay_over)
  // belady / opt: next request step of each expert as of its last request
  std::vector<int32_t> next_use_;
};

}  // namespace offload
}  // namespace moe
