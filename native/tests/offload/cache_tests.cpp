// Hand-worked checks of the C++ expert cache: slot semantics, bypass, static pinning, and that every
// broken precondition throws moe::Error with a message (never aborts). The request-by-request
// agreement with the simulator is runtime/test/offload/cache-twin.test.ts.
#include <cstdio>
#include <vector>

#include "../check.h"
#include "moe/error.h"
#include "moe/offload/expert_cache.h"

using namespace moe::offload;
using moe_test::expect;
using moe_test::expect_throws;

namespace {

struct Req {
  int code, slot, victim;
};

// Runs one layer through steps of request sets; returns every outcome.
std::vector<Req> run(LayerCache& c, const std::vector<std::vector<int32_t>>& steps) {
  std::vector<Req> out;
  for (size_t s = 0; s < steps.size(); ++s) {
    c.begin_step(static_cast<int32_t>(s), steps[s].data(), static_cast<int>(steps[s].size()));
    for (int32_t e : steps[s]) {
      const CacheOutcome o = c.request(e);
      out.push_back({o.code, o.slot, o.victim});
    }
    c.check_invariants();
  }
  return out;
}

// An ExpertCache of `layers` MoE layers over 8 experts, `slots` each.
ExpertCache make_cache(int layers, int slots, CachePolicy policy = CachePolicy::Lru) {
  ExpertCacheOptions o;
  o.layers = layers;
  o.num_experts = 8;
  o.slots_per_layer = slots;
  o.policy = policy;
  return ExpertCache(o);
}

bool same(const std::vector<Req>& got, const std::vector<Req>& want) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].code != want[i].code || got[i].slot != want[i].slot || got[i].victim != want[i].victim) {
      std::printf("    request %zu: got (%d, slot %d, victim %d) want (%d, slot %d, victim %d)\n", i, got[i].code, got[i].slot, got[i].victim,
                  want[i].code, want[i].slot, want[i].victim);
      return false;
    }
  }
  return true;
}

}  // namespace

int main() {
  // Worked by hand (capacity 2): {1,2} fill slots 0,1; {3} evicts 1 (older) into slot 0; {1} evicts 2
  // (least recent) into slot 1; {2,3}: 2 evicts 1 (3 is protected) into slot 1, 3 hits slot 0.
  const std::vector<std::vector<int32_t>> steps = {{1, 2}, {3}, {1}, {2, 3}};
  const std::vector<Req> lru_want = {{1, 0, -1}, {1, 1, -1}, {2, 0, 1}, {2, 1, 2}, {2, 1, 1}, {0, 0, -1}};
  {
    LayerCache c(8, 2, CachePolicy::Lru);
    expect(same(run(c, steps), lru_want), "lru hand-worked sequence");
  }
  {
    // lfu: all counts tie at 1 or the protected one is the only candidate: same decisions as lru here.
    LayerCache c(8, 2, CachePolicy::Lfu);
    expect(same(run(c, steps), lru_want), "lfu hand-worked sequence");
  }
  {
    // fifo: {1,2}; {3} evicts 1 (first in); {1} evicts 2; {2,3}: 2 evicts 1 (3 protected); 3 hits.
    LayerCache c(8, 2, CachePolicy::Fifo);
    expect(same(run(c, steps), lru_want), "fifo hand-worked sequence");
  }
  {
    // fifo differs from lru when a hit would refresh: {1,2} {1} {3}: fifo evicts 1, lru evicts 2.
    LayerCache f(8, 2, CachePolicy::Fifo), l(8, 2, CachePolicy::Lru);
    const std::vector<std::vector<int32_t>> s2 = {{1, 2}, {1}, {3}};
    expect(run(f, s2).back().victim == 1, "fifo ignores hits");
    expect(run(l, s2).back().victim == 2, "lru refreshes on hits");
  }
  {
    // lfu keeps counts across eviction: {1} {1} {2} {3}: at {3} 1 has 2 requests, 2 has 1 -> evict 2.
    LayerCache c(8, 2, CachePolicy::Lfu);
    const auto r = run(c, {{1}, {1}, {2}, {3}});
    expect(r.back().code == kOutcomeEvict && r.back().victim == 2 && r.back().slot == 1, "lfu evicts the least requested");
  }
  {
    // bypass: capacity 1 and both experts of the step requested.
    LayerCache c(8, 1, CachePolicy::Lru);
    const auto r = run(c, {{4, 5}});
    expect(r[1].code == kOutcomeBypass && r[1].slot == kNoSlot, "miss with every cached expert protected bypasses");
  }
  {
    LayerCacheOptions o;
    o.pinned = {5, 2};
    LayerCache c(8, 3, CachePolicy::Static, o);
    const auto r = run(c, {{2, 3}, {5}});
    expect(r[0].code == kOutcomeHit && r[0].slot == 1 && r[1].code == kOutcomeBypass && r[2].code == kOutcomeHit && r[2].slot == 0,
           "static: pinned experts hit in their slots, others bypass, free slots stay free");
    expect(c.size() == 2, "static never fills its free slots");
  }
  {
    // belady: next uses given by the caller; {1,2} next 1 at step 5, 2 at step 3; {3}: evict 1.
    LayerCache c(8, 2, CachePolicy::Belady);
    const int32_t s0[] = {1, 2}, s1[] = {3};
    c.begin_step(0, s0, 2);
    c.request(1, 5);
    c.request(2, 3);
    c.begin_step(1, s1, 1);
    const CacheOutcome o = c.request(3, kNever);
    expect(o.code == kOutcomeEvict && o.victim == 1 && o.slot == 0, "belady evicts the farthest next use");
  }
  {
    // lfru with decay 0.5: {1}{1}{2}{3}: CRF(1) at step 3 = (1 + 0.5) * 0.25 = 0.375, CRF(2) = 0.5 -> evict 1.
    LayerCacheOptions o;
    o.lfru_decay = 0.5;
    LayerCache c(8, 2, CachePolicy::Lfru, o);
    expect(run(c, {{1}, {1}, {2}, {3}}).back().victim == 1, "lfru weighs recency");
    LayerCache d(8, 2, CachePolicy::Lfru);  // default decay 0.9375: 1.9375*0.9375^2=1.70 > 0.9375 -> evict 2
    expect(run(d, {{1}, {1}, {2}, {3}}).back().victim == 2, "lfru weighs frequency");
  }
  {
    // prefetch: fills a free slot, does not count as a request.
    LayerCache c(8, 2, CachePolicy::Lfu);
    const int32_t s0[] = {1};
    c.begin_step(0, s0, 1);
    expect(c.prefetch(6).code == kOutcomeInsert && c.has(6), "prefetch inserts");
    expect(c.prefetch(6).code == kOutcomeHit, "prefetch of a cached expert is a hit");
  }
  {
    ExpertCache ec = make_cache(2, 2);
    const int32_t a[] = {0, 1, 2};
    const StepCounts sc = ec.run_step(1, 0, a, 3, nullptr, nullptr);
    expect(sc.hits == 0 && sc.misses == 3 && ec.stats(1).inserts == 2 && ec.stats(1).bypasses == 1 && ec.stats(0).requests == 0,
           "per-layer counts");
  }
  {
    // Misses decided before admission (--cpu-fill none), capacity 1, lru. Step 0 {1,2}: both miss, the
    // chooser admits only 2 (slot 0); step 1 {1,2}: 2 hits, 1 admitted but 2 is protected: bypass;
    // step 2 {1}: admitted, evicts 2 into slot 0.
    ExpertCache ec = make_cache(1, 1);
    std::vector<std::vector<int32_t>> seen;
    auto admit_only_2 = [&](const std::vector<int32_t>& m, std::vector<uint8_t>& admit) {
      seen.push_back(m);
      for (size_t i = 0; i < m.size(); ++i) admit[i] = m[i] == 2 ? 1 : 0;
    };
    auto admit_all = [&](const std::vector<int32_t>& m, std::vector<uint8_t>&) { seen.push_back(m); };
    const int32_t s0[] = {1, 2}, s2[] = {1};
    CacheOutcome out[2];
    StepCounts c0 = ec.run_step_deciding_misses(0, 0, s0, 2, admit_only_2, out);
    expect(c0.hits == 0 && c0.misses == 2 && seen.back() == std::vector<int32_t>{1, 2}, "deciding: both miss, chooser sees them ascending");
    expect(out[0].code == kOutcomeBypass && out[1].code == kOutcomeInsert && out[1].slot == 0 && ec.layer(0).slot_of(2) == 0 && !ec.layer(0).has(1),
           "deciding: the one not admitted leaves the cache as it was");
    StepCounts c1 = ec.run_step_deciding_misses(0, 1, s0, 2, admit_all, out);
    expect(c1.hits == 1 && c1.misses == 1 && seen.back() == std::vector<int32_t>{1} && out[1].code == kOutcomeHit && out[0].code == kOutcomeBypass,
           "deciding: hits first, the protected slot makes the admitted miss bypass");
    StepCounts c2 = ec.run_step_deciding_misses(0, 2, s2, 1, admit_all, out);
    expect(c2.misses == 1 && out[0].code == kOutcomeEvict && out[0].victim == 2 && out[0].slot == 0, "deciding: an admitted miss evicts as usual");
    const LayerCacheStats& st = ec.stats(0);
    expect(st.requests == 5 && st.hits == 1 && st.bypasses == 2 && st.inserts == 1 && st.evictions == 1, "deciding: per-layer counts");
  }
  expect_throws(
      [] {
        ExpertCache ec = make_cache(1, 2, CachePolicy::Opt);
        const int32_t s[] = {1};
        ec.run_step_deciding_misses(0, 0, s, 1, [](const std::vector<int32_t>&, std::vector<uint8_t>&) {}, nullptr);
      },
      "cannot decide misses before admitting", "opt deciding misses");
  // Broken preconditions throw.
  expect_throws([] { LayerCache c(8, -1, CachePolicy::Lru); }, "capacity", "capacity -1");
  {
    // Capacity 0 (naive on-demand loading): every request bypasses, nothing is ever cached.
    LayerCache c(8, 0, CachePolicy::Lru);
    const int32_t r[] = {2, 5};
    c.begin_step(0, r, 2);
    const CacheOutcome o1 = c.request(2), o2 = c.request(5);
    expect(o1.code == kOutcomeBypass && o2.code == kOutcomeBypass && o1.slot == kNoSlot && c.size() == 0 && !c.has(2), "capacity 0 bypasses");
  }
  expect_throws([] { parse_policy("mru"); }, "unknown cache policy 'mru'", "unknown policy");
  expect_throws([] { LayerCacheOptions o; o.pinned = {1, 2, 3}; LayerCache c(8, 2, CachePolicy::Static, o); }, "exceed capacity", "static over capacity");
  expect_throws([] { LayerCacheOptions o; o.pinned = {1}; LayerCache c(8, 2, CachePolicy::Lru, o); }, "static policy only", "pinned for lru");
  expect_throws([] { LayerCacheOptions o; o.lfru_decay = 1.5; LayerCache c(8, 2, CachePolicy::Lfru, o); }, "decay", "bad decay");
  expect_throws(
      [] {
        LayerCache c(8, 2, CachePolicy::Lru);
        const int32_t s[] = {2, 1};
        c.begin_step(0, s, 2);
      },
      "ascending", "unsorted request set");
  expect_throws(
      [] {
        LayerCache c(8, 2, CachePolicy::Lru);
        const int32_t s[] = {1};
        c.begin_step(3, s, 1);
        c.begin_step(2, s, 1);
      },
      "backwards", "step going back");
  expect_throws(
      [] {
        LayerCache c(8, 2, CachePolicy::Lru);
        const int32_t s[] = {1};
        c.begin_step(0, s, 1);
        c.request(2);
      },
      "outside the current step", "request not in the set");
  expect_throws(
      [] {
        LayerCache c(8, 2, CachePolicy::Lru);
        const int32_t s[] = {9};
        c.begin_step(0, s, 1);
      },
      "outside [0, 8)", "expert out of range");
  expect_throws(
      [] {
        ExpertCache ec = make_cache(1, 2, CachePolicy::Belady);
        const int32_t s[] = {1};
        ec.run_step(0, 0, s, 1, nullptr, nullptr);
      },
      "belady needs", "belady without next uses");
  if (moe_test::failures()) {
    std::printf("%d offload check(s) FAILED\n", moe_test::failures());
    return 1;
  }
  std::printf("all offload cache tests passed\n");
  return 0;
}
