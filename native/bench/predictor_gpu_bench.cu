// predictor_gpu_bench: the expert predictor of `--prefetch predicted` (issue 12) on the CPU vs on the GPU,
// to settle "on the GPU or the CPU, whichever is cheaper (measure it)". The model has the deployed shape
// (.gpu/pred-k1-task-summary/predictor.json: 26 MoE layers x 64 experts, top-6, lookahead 1, feature width
// 1946, hidden [256], ReLU) with seeded random weights; the routing is a synthetic one of 32 sequences.
// For R = 1..32 rows per call (a decode step of batch R at one MoE layer) it times:
//   cpu_serial   PredictorMlp::predict row after row, one scratch (what a decode forward does now);
//   cpu_pooled   the rows over a ThreadPool of hardware_concurrency threads (what predict_prefill_rows does);
//   gpu_idle     PredictorMlpGpu::predict_rows: pack + one copy up + kernel + one copy down + synchronise,
//                on its own non-blocking stream, nothing else on the GPU;
//   gpu_busy     the same while another non-blocking stream keeps every SM full with a spin kernel (each
//                block spins --busy-block-us, kernels queued back to back): the predictor's blocks wait
//                for free slots, as they would behind the forward's kernels;
//   gpu_busy_hi  gpu_busy with the predictor's stream at the highest priority;
//   gpu_idle_mapped, gpu_busy_mapped  gpu_idle / gpu_busy with PredictorTransfer::Mapped (no copies: the
//                kernel reads the packed rows from, and writes the ids to, mapped pinned host memory).
// First it checks the GPU against the CPU (logits within 1e-4 + 1e-4 |x|, ids equal except between logits
// within 1e-5 of each other), with and without a min_logit gate; any other difference: exit status 1.
// Prints a table and writes JSON (--out, atomically: FILE.tmp then rename).
//
//   predictor_gpu_bench [--out FILE] [--min-seconds 0.3] [--budget 8] [--busy-block-us 20] [--seed 1]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_args.h"
#include "bench_output.h"
#include "cuda_check.h"
#include "moe/offload/predictor_mlp.h"
#include "moe/thread_pool.h"
#include "predictor_mlp_gpu.h"

using moe::bench::arg;
using moe::cuda::PredictorMlpGpu;
using moe::cuda::PredictorRow;
using moe::cuda::PredictorTransfer;
using moe::offload::PredictorBlock;
using moe::offload::PredictorMlp;
using moe::offload::PredictorModel;

namespace {

constexpr int kL = 26, kE = 64, kK = 6, kHidden = 256;
constexpr int kSeqs = 32, kLength = 48;  // row r of a call reads sequence r
constexpr int kSets = 64;                // calls cycle through this many row sets (layer, tokens)
constexpr int kMaxRows = 32;
constexpr int kRowCounts[] = {1, 2, 4, 8, 16, 32};
constexpr size_t kMinIters = 2000, kMaxIters = 1000000;

void progress(const std::string& s) {
  std::printf("[predictor_gpu_bench] %s\n", s.c_str());
  std::fflush(stdout);
}

PredictorModel make_model(int budget, std::mt19937_64& rng) {
  PredictorModel m;
  m.moe_layers = kL;
  m.num_experts = kE;
  m.top_k = kK;
  m.lookahead = 1;
  m.budget = budget;
  auto routing = [](int layer_offset, int token_offset, bool per_layer) {
    PredictorBlock b;
    b.layer_offset = layer_offset;
    b.token_offset = token_offset;
    b.per_layer = per_layer;
    return b;
  };
  PredictorBlock layer;
  layer.kind = PredictorBlock::Kind::Layer;
  m.blocks = {routing(0, 0, false), routing(-1, 0, false), routing(-2, 0, false), routing(0, 0, true), routing(1, -1, false), layer};
  std::normal_distribution<float> normal(0.f, 0.05f);
  const int width = 4 * kE + kL * kE + kL;  // 1946
  for (auto [in, out] : {std::pair<int, int>{width, kHidden}, {kHidden, kE}}) {
    moe::offload::PredictorLayer l;
    l.in = in;
    l.out = out;
    l.weight_t.resize(static_cast<size_t>(in) * out);
    l.bias.resize(static_cast<size_t>(out));
    for (float& w : l.weight_t) w = normal(rng);
    for (float& b : l.bias) b = normal(rng);
    m.layers.push_back(std::move(l));
  }
  return m;
}

// One sequence's routing [kLength * kL * kK]: per (token, layer) the top-6 of a softmax over 64 random
// logits, weights its probabilities (DeepSeek-V2-Lite does not renormalise the top-k).
struct Routing {
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

Routing make_routing(std::mt19937_64& rng) {
  Routing r;
  std::normal_distribution<double> normal(0.0, 1.5);
  std::vector<double> p(kE);
  std::vector<int> order(kE);
  for (int n = 0; n < kLength * kL; ++n) {
    double sum = 0;
    for (double& x : p) sum += (x = std::exp(normal(rng)));
    for (int e = 0; e < kE; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + kK, order.end(), [&](int a, int b) { return p[a] > p[b]; });
    for (int j = 0; j < kK; ++j) {
      r.experts.push_back(order[j]);
      r.weights.push_back(static_cast<float>(p[order[j]] / sum));
    }
  }
  return r;
}

// A decode step's rows at one MoE layer i: row r is sequence r at a random token.
std::vector<PredictorRow> make_set(const std::vector<Routing>& seqs, std::mt19937_64& rng) {
  const int i = std::uniform_int_distribution<int>(0, kL - 2)(rng);
  std::uniform_int_distribution<int> token(0, kLength - 1);
  std::vector<PredictorRow> rows(kMaxRows);
  for (int r = 0; r < kMaxRows; ++r) rows[r] = PredictorRow{seqs[r].experts.data(), seqs[r].weights.data(), kLength, token(rng), i};
  return rows;
}

struct Check {
  long rows = 0, ids = 0, tie_mismatches = 0, real_mismatches = 0, logit_mismatches = 0;
  double max_abs = 0;
};

// GPU vs CPU on `n` rows of `set`: logits and ids (see the header comment for the rule).
void check_rows(const PredictorMlp& cpu, PredictorMlpGpu& gpu, cudaStream_t stream, const std::vector<PredictorRow>& set, int n, Check& c) {
  const int budget = cpu.model().budget;
  std::vector<int32_t> gids(static_cast<size_t>(n) * budget), gcount(n), cids(budget);
  std::vector<float> glog(static_cast<size_t>(n) * kE);
  gpu.predict_rows(stream, set.data(), n, gids.data(), gcount.data(), glog.data());
  moe::offload::PredictorScratch s = cpu.make_scratch();
  for (int r = 0; r < n; ++r) {
    const PredictorRow& row = set[r];
    const int cc = cpu.predict(s, row.experts, row.weights, row.length, row.t, row.i, cids.data());
    const std::vector<float>& lg = s.act.back();  // predict leaves the logits in the last layer's activations
    const float* gl = glog.data() + static_cast<size_t>(r) * kE;
    for (int e = 0; e < kE; ++e) {
      const double d = std::fabs(static_cast<double>(gl[e]) - lg[e]);
      c.max_abs = std::max(c.max_abs, d);
      if (!(d <= 1e-4 + 1e-4 * std::fabs(lg[e]))) {
        if (c.logit_mismatches++ < 10) std::printf("  LOGIT MISMATCH row %d (t %d, layer %d) expert %d: cpu %.9g gpu %.9g\n", r, row.t, row.i, e, lg[e], gl[e]);
      }
    }
    const int gc = gcount[r];
    const int32_t* g = gids.data() + static_cast<size_t>(r) * budget;
    for (int j = 0; j < std::max(cc, gc); ++j) {
      bool tie;
      if (j < cc && j < gc) {
        if (cids[j] == g[j]) continue;
        tie = std::fabs(lg[cids[j]] - lg[g[j]]) <= 1e-5f;  // two logits the CPU ranks within 1e-5
      } else {  // one side kept more ids: the gate's boundary must be a tie
        const int e = j < cc ? cids[j] : g[j];
        tie = std::fabs(static_cast<double>(lg[e]) - cpu.model().min_logit) <= 1e-5;
      }
      if (tie) {
        ++c.tie_mismatches;
      } else if (c.real_mismatches++ < 10) {
        std::printf("  ID MISMATCH row %d (t %d, layer %d) place %d: cpu %d (of %d) gpu %d (of %d)\n", r, row.t, row.i, j, j < cc ? cids[j] : -1, cc,
                    j < gc ? g[j] : -1, gc);
      }
    }
    ++c.rows;
    c.ids += cc;
  }
}

// Keeps the GPU busy from its own non-blocking stream: spin kernels of one full wave each (every SM at its
// block limit), each block spinning block_ns on the global timer; kQueued of them (160 us of work at 20 us
// a block) are queued whenever a timed call starts, so the GPU stays full for the whole call.
__global__ void spin_kernel(unsigned long long block_ns) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < block_ns);
}

class BusyGpu {
 public:
  static constexpr int kThreads = 256, kQueued = 8;
  explicit BusyGpu(double block_us) : ns_(static_cast<unsigned long long>(block_us * 1e3)) {
    int device = 0, sms = 0, per_sm = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, spin_kernel, kThreads, 0));
    blocks_ = sms * per_sm;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    for (int i = 0; i < kQueued + 1; ++i) {
      cudaEvent_t e;
      CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      free_.push_back(e);
    }
  }
  ~BusyGpu() {
    cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
    for (cudaEvent_t e : pending_) cudaEventDestroy(e);
    cudaStreamDestroy(stream_);
  }
  int blocks() const { return blocks_; }
  // Tops the queue up to kQueued kernels (called before each timed call, outside the timing).
  void top_up() {
    while (!pending_.empty()) {
      const cudaError_t q = cudaEventQuery(pending_.front());
      if (q == cudaErrorNotReady) break;
      CUDA_CHECK(q);
      free_.push_back(pending_.front());
      pending_.pop_front();
    }
    while (pending_.size() < kQueued) {
      spin_kernel<<<blocks_, kThreads, 0, stream_>>>(ns_);
      CUDA_CHECK_LAUNCH();
      cudaEvent_t e = free_.back();
      free_.pop_back();
      CUDA_CHECK(cudaEventRecord(e, stream_));
      pending_.push_back(e);
    }
  }
  void drain() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  unsigned long long ns_;
  int blocks_ = 0;
  cudaStream_t stream_ = nullptr;
  std::vector<cudaEvent_t> free_;
  std::deque<cudaEvent_t> pending_;
};

struct Stat {
  std::string variant;
  int rows = 0;
  size_t iterations = 0;
  double median_us = 0, p90_us = 0;
};

// Times call(iteration) until both kMinIters calls and min_seconds have passed (after a warm-up);
// before() runs outside the timing.
template <typename Call, typename Before>
Stat time_calls(const std::string& variant, int rows, double min_seconds, Call&& call, Before&& before) {
  using clock = std::chrono::steady_clock;
  for (int w = 0; w < 100; ++w) {
    before();
    call(w);
  }
  std::vector<double> us;
  const auto start = clock::now();
  while (us.size() < kMaxIters && (us.size() < kMinIters || std::chrono::duration<double>(clock::now() - start).count() < min_seconds)) {
    before();
    const auto t0 = clock::now();
    call(static_cast<int>(us.size()));
    us.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  Stat s;
  s.variant = variant;
  s.rows = rows;
  s.iterations = us.size();
  s.median_us = us[us.size() / 2];
  s.p90_us = us[std::min(us.size() - 1, us.size() * 9 / 10)];
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string out = arg(argc, argv, "--out", "");
    const double min_seconds = std::stod(arg(argc, argv, "--min-seconds", "0.3"));
    const int budget = std::stoi(arg(argc, argv, "--budget", "8"));
    const double busy_block_us = std::stod(arg(argc, argv, "--busy-block-us", "20"));
    const uint64_t seed = std::stoull(arg(argc, argv, "--seed", "1"));

    int device = 0;
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    progress(std::string("device ") + prop.name + ", " + std::to_string(prop.multiProcessorCount) + " SMs; host " + std::to_string(hw) + " threads");

    std::mt19937_64 rng(seed);
    const PredictorMlp cpu(make_model(budget, rng));
    std::vector<Routing> seqs;
    for (int s = 0; s < kSeqs; ++s) seqs.push_back(make_routing(rng));
    std::vector<std::vector<PredictorRow>> sets;
    for (int n = 0; n < kSets; ++n) sets.push_back(make_set(seqs, rng));
    progress("model: width " + std::to_string(cpu.feature_width()) + ", hidden " + std::to_string(kHidden) + ", " + std::to_string(kE) + " logits, budget " +
             std::to_string(budget));

    cudaStream_t stream = nullptr, stream_hi = nullptr;
    int least = 0, greatest = 0;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    CUDA_CHECK(cudaStreamCreateWithPriority(&stream_hi, cudaStreamNonBlocking, greatest));
    PredictorMlpGpu gpu(cpu, kMaxRows), gpu_mapped(cpu, kMaxRows, PredictorTransfer::Mapped);

    // Correctness first: every R over 16 sets, both transfers, then a gated model (min_logit at the median
    // logit of place budget / 2, so the gate cuts about half the rows short).
    Check check;
    for (int n : kRowCounts) {
      for (int q = 0; q < 16; ++q) {
        check_rows(cpu, gpu, stream, sets[q], n, check);
        check_rows(cpu, gpu_mapped, stream, sets[q], n, check);
      }
    }
    {
      std::vector<float> place;
      moe::offload::PredictorScratch s = cpu.make_scratch();
      std::vector<int32_t> ids(budget);
      for (const PredictorRow& row : sets[0]) {
        cpu.predict(s, row.experts, row.weights, row.length, row.t, row.i, ids.data());
        place.push_back(s.act.back()[ids[budget / 2]]);
      }
      std::nth_element(place.begin(), place.begin() + place.size() / 2, place.end());
      PredictorModel gated = cpu.model();
      gated.min_logit = place[place.size() / 2];
      const PredictorMlp cpu_gated(std::move(gated));
      PredictorMlpGpu gpu_gated(cpu_gated, kMaxRows), gpu_gated_mapped(cpu_gated, kMaxRows, PredictorTransfer::Mapped);
      for (int q = 0; q < kSets; ++q) {
        check_rows(cpu_gated, gpu_gated, stream, sets[q], kMaxRows, check);
        check_rows(cpu_gated, gpu_gated_mapped, stream, sets[q], kMaxRows, check);
      }
    }
    progress("check: " + std::to_string(check.rows) + " rows, " + std::to_string(check.ids) + " ids; max |logit diff| " + std::to_string(check.max_abs) + "; " +
             std::to_string(check.tie_mismatches) + " tie mismatches, " + std::to_string(check.real_mismatches) + " id mismatches, " +
             std::to_string(check.logit_mismatches) + " logit mismatches");
    const bool ok = check.real_mismatches == 0 && check.logit_mismatches == 0;
    if (!ok) std::printf("CHECK FAILED: the GPU predictor differs from the CPU's\n");

    std::vector<Stat> stats;
    if (ok) {
      moe::ThreadPool pool(hw);
      std::vector<moe::offload::PredictorScratch> scratch;
      for (int c = 0; c < pool.size(); ++c) scratch.push_back(cpu.make_scratch());
      std::vector<int32_t> ids(static_cast<size_t>(kMaxRows) * budget), counts(kMaxRows);
      BusyGpu busy(busy_block_us);
      auto nothing = [] {};
      auto top_up = [&busy] { busy.top_up(); };
      for (int n : kRowCounts) {
        progress("timing " + std::to_string(n) + " rows");
        auto serial = [&](int it) {
          const std::vector<PredictorRow>& set = sets[it % kSets];
          for (int r = 0; r < n; ++r) {
            const PredictorRow& row = set[r];
            counts[r] = cpu.predict(scratch[0], row.experts, row.weights, row.length, row.t, row.i, ids.data() + static_cast<size_t>(r) * budget);
          }
        };
        auto pooled = [&](int it) {  // as OffloadController::predict_prefill_rows
          const std::vector<PredictorRow>& set = sets[it % kSets];
          const int64_t threads = pool.size(), per = (n + threads - 1) / threads;
          pool.parallel_for(threads, 1, [&](int64_t c0, int64_t c1) {
            for (int64_t c = c0; c < c1; ++c) {
              for (int64_t r = c * per; r < std::min<int64_t>(n, (c + 1) * per); ++r) {
                const PredictorRow& row = set[r];
                counts[r] = cpu.predict(scratch[c], row.experts, row.weights, row.length, row.t, row.i, ids.data() + static_cast<size_t>(r) * budget);
              }
            }
          });
        };
        auto on_gpu = [&](PredictorMlpGpu& g, cudaStream_t s) {
          return [&, s](int it) { g.predict_rows(s, sets[it % kSets].data(), n, ids.data(), counts.data()); };
        };
        stats.push_back(time_calls("cpu_serial", n, min_seconds, serial, nothing));
        stats.push_back(time_calls("cpu_pooled", n, min_seconds, pooled, nothing));
        stats.push_back(time_calls("gpu_idle", n, min_seconds, on_gpu(gpu, stream), nothing));
        stats.push_back(time_calls("gpu_idle_mapped", n, min_seconds, on_gpu(gpu_mapped, stream), nothing));
        stats.push_back(time_calls("gpu_busy", n, min_seconds, on_gpu(gpu, stream), top_up));
        stats.push_back(time_calls("gpu_busy_hi", n, min_seconds, on_gpu(gpu, stream_hi), top_up));
        stats.push_back(time_calls("gpu_busy_mapped", n, min_seconds, on_gpu(gpu_mapped, stream), top_up));
        busy.drain();
      }
      progress("busy load: " + std::to_string(busy.blocks()) + " blocks of " + std::to_string(BusyGpu::kThreads) + " threads per kernel, " +
               std::to_string(busy_block_us) + " us per block");
    }

    if (!stats.empty()) {
      const char* variants[] = {"cpu_serial", "cpu_pooled", "gpu_idle", "gpu_idle_mapped", "gpu_busy", "gpu_busy_hi", "gpu_busy_mapped"};
      for (int per_row = 0; per_row < 2; ++per_row) {
        std::printf("\n%s, median (p90) us; host %d threads, budget %d\n%5s", per_row ? "per row" : "per call", hw, budget, "rows");
        for (const char* v : variants) std::printf(" %16s", v);
        std::printf("\n");
        for (int n : kRowCounts) {
          std::printf("%5d", n);
          for (const char* v : variants) {
            for (const Stat& s : stats) {
              if (s.rows != n || s.variant != v) continue;
              const double d = per_row ? n : 1;
              char cell[64];
              std::snprintf(cell, sizeof cell, "%.*f (%.*f)", 1 + per_row, s.median_us / d, 1 + per_row, s.p90_us / d);
              std::printf(" %16s", cell);
            }
          }
          std::printf("\n");
        }
      }
    }

    if (!out.empty()) {
      {
        std::ostringstream f;
        f << "{\n  \"benchmark\": \"predictor_gpu_bench\",\n  \"device\": {\"name\": \"" << prop.name << "\", \"sms\": " << prop.multiProcessorCount
          << "},\n  \"host_threads\": " << hw << ",\n  \"model\": {\"moe_layers\": " << kL << ", \"experts\": " << kE << ", \"top_k\": " << kK
          << ", \"width\": " << cpu.feature_width() << ", \"hidden\": [" << kHidden << "], \"budget\": " << budget << "},\n  \"seed\": " << seed
          << ",\n  \"min_seconds\": " << min_seconds << ",\n  \"busy_block_us\": " << busy_block_us << ",\n  \"check\": {\"pass\": " << (ok ? "true" : "false")
          << ", \"rows\": " << check.rows << ", \"ids\": " << check.ids << ", \"max_abs_logit_diff\": " << check.max_abs
          << ", \"tie_mismatches\": " << check.tie_mismatches << ", \"id_mismatches\": " << check.real_mismatches
          << ", \"logit_mismatches\": " << check.logit_mismatches << "},\n  \"results\": [\n";
        for (size_t i = 0; i < stats.size(); ++i) {
          const Stat& s = stats[i];
          f << "    {\"variant\": \"" << s.variant << "\", \"rows\": " << s.rows << ", \"iterations\": " << s.iterations << ", \"median_us\": " << s.median_us
            << ", \"p90_us\": " << s.p90_us << ", \"median_us_per_row\": " << s.median_us / s.rows << ", \"p90_us_per_row\": " << s.p90_us / s.rows << "}"
            << (i + 1 < stats.size() ? "," : "") << "\n";
        }
        f << "  ]\n}\n";
        moe::bench::write_text_atomic(out, f.str());
      }
      progress("wrote " + out);
    }
    CUDA_CHECK(cudaStreamDestroy(stream));
    CUDA_CHECK(cudaStreamDestroy(stream_hi));
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predictor_gpu_bench: %s\n", e.what());
    return 1;
  }
}
