// Hand-worked checks of the miss rule (moe/offload/miss_policy.h) and of the CPU expert executor: every
// job's output equals a single-threaded mlp_forward reference, whatever the worker shape, and a job that
// throws makes wait() rethrow (never a hang). The same hand-worked rule cases are in
// sim/test/miss-rule.test.ts, so both languages' rules are held to the same numbers.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../check.h"
#include "moe/error.h"
#include "moe/kernels.h"
#include "moe/offload/cpu_expert_executor.h"
#include "moe/offload/miss_policy.h"
#include "moe/offload/offload_controller.h"

using namespace moe;
using namespace moe::offload;
using moe_test::expect;
using moe_test::expect_throws;

namespace {

MissPolicy policy(MissMode mode, int workers) {
  MissPolicy p;
  p.mode = mode;
  p.workers = workers;
  p.costs.copy_ms = 0.3;
  p.costs.gpu_expert_ms = {{1, 0.02}, {16, 0.07}};
  p.costs.cpu_expert_ms = {{1, 0.4}, {4, 0.55}};
  p.costs.activation_copy_ms = 0.01;
  return p;
}

void rule_tests() {
  // interpolation: inside, at the ends, extrapolated linearly, never below 0
  const TokenCurve c = {{1, 1.0}, {3, 2.0}, {5, 6.0}};
  expect(std::fabs(interpolate_curve(c, 2) - 1.5) < 1e-12, "interpolate inside");
  expect(std::fabs(interpolate_curve(c, 7) - 10.0) < 1e-12, "interpolate past the end");
  expect(interpolate_curve({{1, 1.0}, {2, 0.5}}, 10) == 0.0, "interpolate clamps at 0");

  // hybrid, 2 workers, backlog 0, misses of 1, 1, 1, 4 tokens:
  //  #0 copy 0.3+0.02=0.32 vs cpu 0.41 -> copy (copy_free 0.3)
  //  #1 copy 0.62 vs cpu 0.41 -> cpu w0 (0.41)
  //  #2 copy 0.62 vs cpu 0.41 (w1) -> cpu w1 (0.41)
  //  #3 (4 tokens) copy 0.3+0.3+gpu(4)=0.6+0.03=0.63 vs cpu 0.41+0.56=0.97 -> copy
  MissPolicy p = policy(MissMode::Hybrid, 2);
  std::vector<double> cpu_free(2, 0.0);
  std::vector<MissDecision> d;
  const double backlog = decide_misses(p, 0.0, cpu_free, {1, 1, 1, 4}, d);
  const bool want[4] = {false, true, true, false};
  for (int i = 0; i < 4; ++i) expect(d[static_cast<size_t>(i)].on_cpu == want[i], "hybrid decision " + std::to_string(i));
  expect(std::fabs(d[3].via_copy_ms - 0.63) < 1e-9, "hybrid via_copy of the 4-token miss");
  expect(std::fabs(d[3].via_cpu_ms - 0.97) < 1e-9, "hybrid via_cpu of the 4-token miss");
  expect(std::fabs(backlog - 0.6) < 1e-9, "copy backlog after the layer");
  expect(std::fabs(cpu_free[0] - 0.41) < 1e-9 && std::fabs(cpu_free[1] - 0.41) < 1e-9, "workers' free times");

  // a copy backlog of 1 ms sends the first miss to the CPU too
  std::vector<double> f2(2, 0.0);
  decide_misses(p, 1.0, f2, {1}, d);
  expect(d[0].on_cpu, "hybrid with a busy copy engine");

  // fetch never, cpu always
  std::vector<double> f3(1, 0.0);
  decide_misses(policy(MissMode::Fetch, 1), 5.0, f3, {1, 1}, d);
  expect(!d[0].on_cpu && !d[1].on_cpu, "fetch never computes on the CPU");
  decide_misses(policy(MissMode::Cpu, 1), 0.0, f3, {1, 1}, d);
  expect(d[0].on_cpu && d[1].on_cpu, "cpu always computes on the CPU");
  expect_throws([] { parse_miss_mode("gpu"); }, "expected fetch, cpu or hybrid", "unknown miss mode");
  std::vector<double> none;
  expect_throws([&] { decide_misses(p, 0, none, {1}, d); }, "at least one CPU worker", "no workers");

  // the run's CPU correction scales the profile's CPU time, not the activations' round trip:
  // factor 2 at 1 token: 2 * 0.4 + 0.01 = 0.81 against a copy of 0.32 (backlog 0) or 0.92 (backlog 0.6)
  std::vector<double> f4(1, 0.0);
  decide_misses(policy(MissMode::Hybrid, 1), 0.0, f4, {1}, d, 2.0);
  expect(!d[0].on_cpu && std::fabs(d[0].via_cpu_ms - 0.81) < 1e-9, "corrected via_cpu 0.81 loses to a 0.32 copy");
  f4.assign(1, 0.0);
  decide_misses(policy(MissMode::Hybrid, 1), 0.6, f4, {1}, d, 2.0);
  expect(d[0].on_cpu, "corrected via_cpu 0.81 wins against a copy behind 0.6 ms of backlog");

  // CpuCorrection: an exponential mean of measured / profile, each ratio clamped to [0.25, 4]
  CpuCorrection cc;
  cc.on = true;  // --cpu-estimate measured (off by default)
  cc.observe(0.6, 0.4);  // ratio 1.5: 1 + (1.5 - 1) / 32
  expect(std::fabs(cc.factor - 1.015625) < 1e-12, "correction after one job of ratio 1.5");
  cc.observe(10.0, 0.4);  // ratio 25, clamped to 4
  expect(std::fabs(cc.factor - (1.015625 + (4.0 - 1.015625) / 32)) < 1e-12, "a stalled job counts as ratio 4");
  cc.observe(0.5, 0.0);  // no profile time: ignored
  cc.observe(-1.0, 0.4);  // not measured: ignored
  expect(std::fabs(cc.factor - (1.015625 + (4.0 - 1.015625) / 32)) < 1e-12, "jobs without both times are ignored");
  CpuCorrection off;  // the default: --cpu-estimate profile
  off.observe(0.8, 0.4);
  expect(off.factor == 1.0, "--cpu-estimate profile keeps the factor at 1");
  expect(!MissPolicy{}.correct_cpu, "the policy's default is --cpu-estimate profile");
}

uint16_t bf16_of(float v) { return f32_to_bf16(v); }

void executor_tests() {
  const int H = 64, F = 48, experts = 5;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.2f);
  std::vector<std::vector<uint16_t>> w(static_cast<size_t>(experts), std::vector<uint16_t>(static_cast<size_t>(3) * F * H));
  for (auto& v : w)
    for (auto& x : v) x = bf16_of(nd(rng));
  auto weights = [&](int e) {
    const uint16_t* base = w[static_cast<size_t>(e)].data();
    MlpWeights m;
    m.gate = Matrix{base, DType::BF16, F, H};
    m.up = Matrix{base + static_cast<size_t>(F) * H, DType::BF16, F, H};
    m.down = Matrix{base + static_cast<size_t>(2) * F * H, DType::BF16, H, F};
    return m;
  };
  const int rows[experts] = {1, 3, 2, 4, 1};
  std::vector<std::vector<float>> x(experts), y(experts), scale(experts);
  for (int e = 0; e < experts; ++e) {
    x[static_cast<size_t>(e)].resize(static_cast<size_t>(rows[e]) * H);
    for (float& v : x[static_cast<size_t>(e)]) v = nd(rng) * 5.f;
    y[static_cast<size_t>(e)].assign(static_cast<size_t>(rows[e]) * H, 0.f);
    for (int r = 0; r < rows[e]; ++r) scale[static_cast<size_t>(e)].push_back(0.1f * static_cast<float>(r + 1));
  }
  const LinearIsa isa = best_exact_isa();
  for (int workers : {1, 2, 3}) {
    for (int threads : {1, 2}) {
      // spinning (the runtime's default) and sleeping executors must compute the same
      CpuExpertExecutor ex(workers, threads, isa, 4, H, F, threads == 2 ? 2000 : 0);
      std::vector<CpuExpertJob> jobs;
      for (int e = 0; e < experts; ++e) {
        std::fill(y[static_cast<size_t>(e)].begin(), y[static_cast<size_t>(e)].end(), 0.f);
        jobs.push_back({weights(e), x[static_cast<size_t>(e)].data(), rows[e], y[static_cast<size_t>(e)].data(), scale[static_cast<size_t>(e)].data()});
      }
      for (int batch = 0; batch < 2; ++batch) {  // the same executor serves batch after batch
        const auto t0 = std::chrono::steady_clock::now();
        ex.start(&jobs);
        ex.wait();
        const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        // the hand-off latencies are parts of the batch's wall time
        expect(ex.last_start_latency_ms() >= 0 && ex.last_start_latency_ms() <= wall, "start latency within the batch");
        expect(ex.last_join_latency_ms() >= 0 && ex.last_join_latency_ms() <= wall, "join latency within the batch");
      }
      for (int e = 0; e < experts; ++e) {
        FfnScratch s;
        std::vector<float> ref(static_cast<size_t>(rows[e]) * H);
        mlp_forward(x[static_cast<size_t>(e)].data(), rows[e], weights(e), ref.data(), false, 1.f, nullptr, s, isa);
        std::vector<double> want(ref.size());
        for (int r = 0; r < rows[e]; ++r)
          for (int c = 0; c < H; ++c) want[static_cast<size_t>(r) * H + c] = static_cast<double>(ref[static_cast<size_t>(r) * H + c]) * scale[static_cast<size_t>(e)][static_cast<size_t>(r)];
        moe_test::close_all("executor " + std::to_string(workers) + "x" + std::to_string(threads) + " expert " + std::to_string(e),
                            y[static_cast<size_t>(e)].data(), want.data(), want.size(), 1e-6, 1e-5);
        expect(jobs[static_cast<size_t>(e)].ms >= 0, "job time measured");
      }
    }
  }
  // a job that throws (shapes that do not fit) is rethrown by wait(); the executor then still works
  CpuExpertExecutor ex(2, 1, isa, 4, H, F);
  std::vector<CpuExpertJob> bad;
  MlpWeights broken = weights(0);
  broken.down.rows = H + 1;
  bad.push_back({weights(1), x[1].data(), rows[1], y[1].data(), nullptr});
  bad.push_back({broken, x[0].data(), rows[0], y[0].data(), nullptr});
  ex.start(&bad);
  expect_throws([&] { ex.wait(); }, "shapes do not fit", "a throwing job fails the batch");
  std::vector<CpuExpertJob> ok = {{weights(2), x[2].data(), rows[2], y[2].data(), nullptr}};
  ex.start(&ok);
  ex.wait();
  std::vector<CpuExpertJob> too_big = {{weights(2), x[3].data(), 5, y[3].data(), nullptr}};
  expect_throws([&] { ex.start(&too_big); }, "a job of 5 rows", "rows beyond the executor's bound");
  expect_throws([&] { CpuExpertExecutor(0, 1, isa, 4, H, F); }, "must be >= 1", "no workers");

  // --cpu-rounding gpu-order: the executor's bf16 jobs are mlp_forward_gpu_order's bits times the row scale,
  // as the GPU's decode kernel multiplies v by the routing weight (the shapes need hidden % 256 == 0).
  {
    const int H2 = 256, F2 = 40;
    std::vector<uint16_t> w2(static_cast<size_t>(3) * F2 * H2);
    for (auto& v : w2) v = bf16_of(nd(rng));
    MlpWeights m;
    m.gate = Matrix{w2.data(), DType::BF16, F2, H2};
    m.up = Matrix{w2.data() + static_cast<size_t>(F2) * H2, DType::BF16, F2, H2};
    m.down = Matrix{w2.data() + static_cast<size_t>(2) * F2 * H2, DType::BF16, H2, F2};
    std::vector<float> x2(static_cast<size_t>(3) * H2), y2(x2.size()), ref(x2.size());
    for (float& v : x2) v = bf16_to_f32(bf16_of(nd(rng) * 5.f));
    const float sc[3] = {0.3f, 0.7f, 1.1f};
    CpuExpertExecutor ge(1, 2, isa, 4, H2, F2, 0, CpuExpertRounding::GpuOrder);
    expect(ge.rounding() == CpuExpertRounding::GpuOrder, "executor keeps its rounding");
    std::vector<CpuExpertJob> jobs = {{m, x2.data(), 3, y2.data(), sc}};
    ge.start(&jobs);
    ge.wait();
    FfnScratch s;
    mlp_forward_gpu_order(x2.data(), 3, m, ref.data(), false, 1.f, nullptr, s, gpu_order_vectorized());
    size_t differ = 0;
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < H2; ++c) differ += y2[static_cast<size_t>(r) * H2 + c] != ref[static_cast<size_t>(r) * H2 + c] * sc[r];
    expect(differ == 0, "gpu-order executor jobs equal mlp_forward_gpu_order x row scale bit for bit (" + std::to_string(differ) + " differ)");
    expect(parse_cpu_expert_rounding("gpu-order") == CpuExpertRounding::GpuOrder && parse_cpu_expert_rounding("fast") == CpuExpertRounding::Fast, "rounding names");
    expect_throws([] { parse_cpu_expert_rounding("exact"); }, "option --cpu-rounding: unknown value 'exact'", "unknown rounding");
  }
}

// --cpu-fill none: the controller decides a decode forward's misses before the cache admits the fetched
// ones, and the backend reads its decisions; a prefill forward decides nothing (the backend fetches).
// One MoE layer (model layer 1), 8 experts, top-2, one slot per layer.
OffloadOptions no_admit_options(MissMode mode, int workers) {
  OffloadOptions o;
  o.num_layers = 2;
  o.moe_layers = {1};
  o.num_experts = 8;
  o.k = 2;
  o.use_cache = true;
  o.cache.slots_per_layer = 1;
  o.miss = policy(mode, workers);
  o.miss.admit = false;
  return o;
}

void no_admit_tests() {
  auto controller = [](MissMode mode, double copy_ms) {
    OffloadOptions o = no_admit_options(mode, 2);
    o.miss.costs.copy_ms = copy_ms;
    return std::make_unique<OffloadController>(o);
  };
  auto plan = [](std::vector<int32_t> experts) {
    MoePlan p;
    p.layer = 1;
    p.tokens = static_cast<int>(experts.size()) / 2;
    p.k = 2;
    p.expert = std::move(experts);
    p.weight.assign(p.expert.size(), 0.5f);
    return p;
  };
  {
    auto c = controller(MissMode::Cpu, 0.3);
    c->begin_forward(0, {0}, {0}, {7});  // prefill: fetched as usual, expert 1 admitted
    MoePlan p0 = plan({1, 2});
    c->on_plan(p0);
    c->end_forward();
    expect(c->miss_decisions(1) == nullptr && c->cached_slot(1, 1) == 0, "no-admit: a prefill forward decides nothing and admits");
    c->begin_forward(1, {0}, {1}, {7});  // decode {2, 3}: both miss, both on the CPU, neither admitted
    MoePlan p1 = plan({3, 2});
    CopyBacklog b;
    b.ms = 0.25;
    c->set_copy_backlog(b);
    c->on_plan(p1);
    const LayerMissDecisions* d = c->miss_decisions(1);
    expect(d && d->experts == std::vector<int32_t>{2, 3} && d->tokens == std::vector<int32_t>{1, 1} && d->decisions.size() == 2 &&
               d->decisions[0].on_cpu && d->decisions[1].on_cpu && std::fabs(d->copy_backlog_ms - 0.25) < 1e-12,
           "no-admit: the decode forward's misses decided, ascending, with the backlog given");
    expect(c->cached_slot(1, 1) == 0 && c->cached_slot(1, 2) < 0 && c->cached_slot(1, 3) < 0, "no-admit: CPU experts not admitted, the cache kept expert 1");
    expect(c->miss_decisions(0) == nullptr, "no-admit: decisions only for the layer decided");
    expect(c->cache().stats(0).bypasses == 3 && c->cache().stats(0).hits == 0, "no-admit: counts (prefill bypass of 2, two CPU misses)");
    c->end_forward();
  }
  {
    // --cpu-estimate measured: CPU jobs that ran at twice the profile's time move the controller's rule.
    // A decode miss (the first of two) behind 0.25 ms of copies: copy 0.25 + 0.3 + 0.02 = 0.57 against the CPU's 0.41 (factor
    // 1); after 100 jobs of 0.8 ms at 1 row the factor is 2 - (31/32)^100 = 1.958, the CPU 0.793: fetched.
    // With the correction off (--cpu-estimate profile) the same jobs leave it on the CPU.
    auto decide_after = [&](bool correct) {
      OffloadOptions o = no_admit_options(MissMode::Hybrid, 1);
      o.miss.correct_cpu = correct;
      OffloadController c(o);
      for (int i = 0; i < 100; ++i) c.on_cpu_job(1, 0.8);
      c.begin_forward(1, {0}, {0}, {7});
      MoePlan p = plan({2, 3});  // one token: experts 2 and 3 miss; the first decision is checked
      CopyBacklog b;
      b.ms = 0.25;
      c.set_copy_backlog(b);
      c.on_plan(p);
      const LayerMissDecisions* d = c.miss_decisions(1);
      if (!d || d->decisions.size() != 2) throw Error("the correction test expected two decided misses");
      return std::make_pair(d->decisions[0], c.cpu_estimate_factor());
    };
    const auto [on, f_on] = decide_after(true);
    expect(std::fabs(f_on - (2.0 - std::pow(31.0 / 32.0, 100))) < 1e-9, "measured: the factor after 100 jobs of ratio 2");
    expect(!on.on_cpu && std::fabs(on.via_cpu_ms - (f_on * 0.4 + 0.01)) < 1e-9, "measured: the slower CPU loses the miss to the copy");
    const auto [off, f_off] = decide_after(false);
    expect(f_off == 1.0 && off.on_cpu && std::fabs(off.via_cpu_ms - 0.41) < 1e-9, "profile: the same jobs leave the rule as calibrated");
  }
  {
    // hybrid with copies far cheaper than the CPU: the miss is fetched and so admitted (evicting 1)
    auto c = controller(MissMode::Hybrid, 0.001);
    c->begin_forward(1, {0}, {0}, {7});
    MoePlan p = plan({1, 1});  // one expert twice: a set of one
    c->on_plan(p);
    expect(c->miss_decisions(1) && !c->miss_decisions(1)->decisions[0].on_cpu && c->cached_slot(1, 1) == 0, "no-admit: a fetched miss is admitted");
  }
  {
    // A late prefetch of an expert the layer needs counts in the backlog; one of an expert it does not
    // need does not. Hybrid, policy()'s costs at 1 token: copy 0.3, GPU 0.02, CPU 0.4 + 0.01; expert 1 is
    // cached (a hit whose prefetch is still queued, 2 ms of it), expert 2 misses, 0.05 ms already on the
    // stream. Without the late prefetch the miss is fetched (0.05 + 0.3 + 0.02 < 0.41); behind it, it goes
    // to the CPU (2.05 + 0.32 > 0.41).
    auto decide = [&](std::vector<double> late, std::vector<int32_t> experts) {
      auto c = controller(MissMode::Hybrid, 0.3);
      c->begin_forward(0, {0}, {0}, {7});  // prefill: expert 1 admitted
      MoePlan p0 = plan({1, 1});
      c->on_plan(p0);
      c->end_forward();
      c->begin_forward(1, {0}, {1}, {7});
      MoePlan p1 = plan(std::move(experts));
      CopyBacklog b;
      b.ms = 0.05;
      b.late_prefetch_ms = std::move(late);
      c->set_copy_backlog(b);
      c->on_plan(p1);
      const LayerMissDecisions* d = c->miss_decisions(1);
      return d ? *d : LayerMissDecisions{};
    };
    std::vector<double> late(8, 0.0);
    late[1] = 2.0;
    LayerMissDecisions needed = decide(late, {1, 2});
    expect(needed.experts == std::vector<int32_t>{2} && needed.decisions.size() == 1 && needed.decisions[0].on_cpu &&
               std::fabs(needed.copy_backlog_ms - 2.05) < 1e-12,
           "no-admit: a needed expert's queued prefetch (2 ms) is in the backlog: the miss goes to the CPU");
    std::vector<double> other(8, 0.0);
    other[5] = 2.0;
    LayerMissDecisions not_needed = decide(other, {1, 2});
    expect(not_needed.decisions.size() == 1 && !not_needed.decisions[0].on_cpu && std::fabs(not_needed.copy_backlog_ms - 0.05) < 1e-12,
           "no-admit: a queued prefetch of an expert the layer does not need is not in the backlog: the miss is fetched");
    LayerMissDecisions none = decide({}, {1, 2});
    expect(none.decisions.size() == 1 && !none.decisions[0].on_cpu && std::fabs(none.copy_backlog_ms - 0.05) < 1e-12, "no-admit: no prefetch backlog: fetched");
    CopyBacklog short_list;
    short_list.late_prefetch_ms = {0.0, 1.0};
    const int32_t out_of_range[] = {3};
    expect_throws([&] { short_list.for_experts(out_of_range, 1); }, "outside the 2", "an expert beyond the backlog's list is refused");
  }
  {
    OffloadOptions o = no_admit_options(MissMode::Cpu, 1);
    o.cache.policy = CachePolicy::Belady;
    o.planned_offsets = {0, 1};  // the future belady needs: one step, expert 1
    o.planned_experts = {1};
    expect_throws([&] { OffloadController c(o); }, "--cpu-fill none: the belady cache", "no-admit with belady refused");
  }
}

}  // namespace

int main() {
  rule_tests();
  executor_tests();
  no_admit_tests();
  if (moe_test::failures() == 0) {
    std::printf("all miss policy tests passed\n");
    return 0;
  }
  std::printf("%d miss policy check(s) failed\n", moe_test::failures());
  return 1;
}
