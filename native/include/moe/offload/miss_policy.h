#pragma once
// What the offloading runtime does with a missed expert (issue 12): fetch it over PCIe and run it on the
// GPU (`fetch`, issue 6's behaviour), run it on the CPU from the pinned host copy (`cpu`), or choose per
// expert by the cost model (`hybrid`). The names and the rule are the simulator's (sim/src/cost/miss-rule.ts
// is the same rule in TypeScript; a test feeds the runtime's logged decisions to it).
//
// The rule (list scheduling, in the layer's miss order = ascending expert id): the copy engine is free in
// `copy_backlog_ms`; each CPU worker w is free in cpu_free[w] (0 at a layer's start: a layer waits for all
// its experts). For a miss with n tokens:
//   via_copy = copy_free + copy_ms + gpu_ms(n)             (the expert's copy, then its GPU launch)
//   via_cpu  = min_w cpu_free[w] + cpu_ms(n)               (cpu_ms includes the activations' round trip)
// where cpu_ms(n) = f * cpu_expert_ms(n) + activation_copy_ms, f the run's CPU correction (CpuCorrection
// below; 1 with --cpu-estimate profile). hybrid takes the CPU when via_cpu < via_copy; cpu always; fetch
// never. The chosen resource's free time advances (copy_free += copy_ms, or the earliest worker's +=
// cpu_ms(n)). The background fill of a CPU-computed expert the cache keeps is issued after the layer's demand
// copies and does not enter this layer's estimates (it enters the next layer's backlog).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe::offload {

enum class MissMode : int8_t { Fetch = 0, Cpu = 1, Hybrid = 2 };
MissMode parse_miss_mode(const std::string& name);  // throws naming the value
const char* miss_mode_name(MissMode m);

// A calibration curve: (tokens, ms) points, tokens ascending; piecewise linear, extrapolated linearly
// past the ends, never below 0 (sim/src/cost/cost-model.ts interpolate(), the same arithmetic).
using TokenCurve = std::vector<std::pair<double, double>>;
double interpolate_curve(const TokenCurve& curve, double tokens);

struct MissCosts {
  double copy_ms = 0;          // one expert host -> device (per-copy overhead + bytes / bandwidth)
  TokenCurve gpu_expert_ms;    // one routed expert with n tokens on the GPU
  TokenCurve cpu_expert_ms;    // one routed expert with n tokens on one CPU worker
  double activation_copy_ms = 0;  // the CPU expert's activations to the host and its output back
  // f: the run's correction of the profile's CPU times (CpuCorrection::factor)
  double cpu_ms(int tokens, double f = 1.0) const { return f * interpolate_curve(cpu_expert_ms, tokens) + activation_copy_ms; }
  double gpu_ms(int tokens) const { return interpolate_curve(gpu_expert_ms, tokens); }
};

// How the CPU computes a bf16 miss (`--cpu-rounding`): Fast, mlp_forward's dpbf16 kernel (bf16 activations,
// fp32 sums in its own order; the default, the kernel every CPU-mode figure was measured with), or GpuOrder,
// mlp_forward_gpu_order, which rounds exactly as the CUDA decode expert kernel does, so that a miss computed
// on the CPU gives the GPU's bits and the run's logits are the all-resident run's (needs AVX-512BW; exact
// while the GPU runs its decode kernel, up to 32 rows a forward). Quantized experts are not affected.
enum class CpuExpertRounding : int8_t { Fast = 0, GpuOrder = 1 };
CpuExpertRounding parse_cpu_expert_rounding(const std::string& name);  // throws naming the value
const char* cpu_expert_rounding_name(CpuExpertRounding r);

// `--cpu-estimate measured` (issue 12: the rule's costs are "the calibration profile, corrected by what the run
// measures"; opt-in, off by default until a device run has measured it against the profile's times): the
// profile's CPU expert times are scaled by f, a running mean of the ratio of each finished CPU job's measured
// wall time to the profile's time for its rows. A host whose CPU is slower inside the runtime than calibrate
// timed it (idle workers waking, another tenant, the copy engine beside them: 0.36 ms int8 jobs against
// calibrate's 0.30 on an H100 host) then puts fewer misses on the CPU, and a faster one more. f starts at 1 for
// each session; every job moves it by kWeight of the difference (an exponential mean over about the last 32
// jobs, a step of batch 1's CPU experts), each ratio clamped to [kMinRatio, kMaxRatio] so one job stalled by the
// OS cannot swing the rule. Jobs are observed when their layer joins, in the layer's decision order (ascending
// expert), so the next layer decides with them. sim/src/cost/cpu-correction.ts is the same arithmetic; the miss
// log keeps f per decision, and a test replays the log's measured jobs through the TypeScript twin to the same
// f.
struct CpuCorrection {
  static constexpr double kWeight = 1.0 / 32;
  static constexpr double kMinRatio = 0.25, kMaxRatio = 4.0;
  bool on = false;  // true: --cpu-estimate measured; false (profile): f stays 1
  double factor = 1.0;
  void observe(double measured_ms, double profile_ms);
};

struct MissPolicy {
  MissMode mode = MissMode::Fetch;
  int workers = 1;             // CPU experts computed at once
  int threads_per_worker = 1;  // threads each
  int spin_us = 2000;          // CPU threads poll this long for the next layer's jobs before sleeping
  CpuExpertRounding rounding = CpuExpertRounding::Fast;
  // A CPU-computed expert the cache admitted: copied into its slot in the background (true), or its slot
  // left empty until the GPU needs it (false, "lazy": a later cache hit on it is a physical miss, decided
  // by this rule again). The simulator's cpuFill.
  bool fill = true;
  // false (`--cpu-fill none`, Fiddler's way, the commands' default; true: background or lazy, as `fill` says): a miss the rule puts on the CPU is not admitted to the cache
  // at all, so nothing is copied for it and the cache keeps what it held. The layer's misses are then
  // decided before the cache admits the fetched ones (the OffloadController decides in decode forwards,
  // ExpertCache::run_step_deciding_misses; the backend follows its decisions). Prefill forwards fetch.
  bool admit = true;
  MissCosts costs;
  bool correct_cpu = false;    // --cpu-estimate measured (CpuCorrection); false: profile, the default
  bool log = false;            // keep every decision with its estimates (MissLog)
};

struct MissDecision {
  bool on_cpu = false;
  double via_copy_ms = 0, via_cpu_ms = 0;
};

// Decides `tokens.size()` misses in order (see the header comment). cpu_free: each worker's free time
// (ms from now), updated; cpu_factor: the run's CpuCorrection::factor; the return value's copy backlog
// after the layer's demand copies.
double decide_misses(const MissPolicy& policy, double copy_backlog_ms, std::vector<double>& cpu_free,
                     const std::vector<int32_t>& tokens, std::vector<MissDecision>& out, double cpu_factor = 1.0);

// The copy engine's backlog when a layer's routing reaches the host, as the rule takes it: the work on the
// copy stream ahead of this layer's demand copies (the simulator's copy.estimateFinish(now, 0, demand) in
// sim/src/timing/engine.ts routed(), taken after the layer's late hits are promoted).
//  - ms: what is on the stream already: earlier demand copies, promoted prefetches, and the prefetch pieces
//    the scheduler issued (at most its pieces in flight, each counted whole: the simulator counts the one
//    running piece's remainder, so this is at most one piece high);
//  - late_prefetch_ms[e] ([experts] or empty): a prefetch of this layer's expert e still queued on the host.
//    When the layer needs e (a late hit) its queued pieces are issued at once, ahead of the misses, so they
//    count; prefetches of experts it does not need stay behind the demand copies and do not.
struct CopyBacklog {
  double ms = 0;
  std::vector<double> late_prefetch_ms;
  // The backlog for a layer that needs `experts` (n ids): ms plus their queued prefetches.
  double for_experts(const int32_t* experts, int n) const;
};

// One MoE layer's misses as the OffloadController decided them (admit false): ascending experts, their
// decisions, and the copy backlog the rule was given.
struct LayerMissDecisions {
  int layer = -1;  // model layer id; -1: none this forward
  double copy_backlog_ms = 0;
  std::vector<int32_t> experts, tokens;
  std::vector<MissDecision> decisions;
};

// The runtime's decisions with the estimates they used, for the simulator's rule to replay.
struct MissLog {
  std::vector<int32_t> step, layer, expert, tokens;
  std::vector<float> copy_backlog_ms, via_copy_ms, via_cpu_ms, cpu_measured_ms;
  std::vector<float> cpu_factor;  // the CpuCorrection factor the decision used
  std::vector<uint8_t> on_cpu, first_of_layer;  // first_of_layer: a new layer's decisions start here
  size_t rows() const { return step.size(); }
  void clear();
};

}  // namespace moe::offload
