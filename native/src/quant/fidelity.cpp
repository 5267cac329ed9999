// expert_fidelity (fidelity.h): one task per (MoE layer, expert), taken from an atomic counter by
// `threads` workers, each with its own blob, scratch and outputs; the kernels run single-threaded
// inside a task (experts, not rows, are the parallel unit: thousands of them, no barriers).
#include "moe/quant/fidelity.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <string>
#include <thread>

#include "moe/error.h"
#include "moe/quant/expert_kernels.h"
#include "moe/quant/quantize.h"
#include "moe/thread_pool.h"

namespace moe::quant {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// rows x hidden values rmsnorm(g) * norm, g standard normal; deterministic in (seed, layer).
std::vector<float> random_rows(int rows, int hidden, const std::vector<float>& norm, double eps, uint64_t seed, int layer) {
  Rng rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(layer) + 1);
  std::vector<float> x(static_cast<size_t>(rows) * hidden);
  for (size_t i = 0; i < x.size(); i += 2) {
    const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();  // u1 in (0, 1]
    const double r = std::sqrt(-2.0 * std::log(u1));
    x[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < x.size()) x[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
  rmsnorm(x.data(), rows, hidden, hidden, norm.data(), static_cast<float>(eps), x.data(), hidden);
  return x;
}

double relative_error(const std::vector<float>& q, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(q[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  if (den == 0) return num == 0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

}  // namespace

FidelityResult expert_fidelity(const ModelConfig& config, const ModelWeights& weights, const FidelityOptions& o) {
  if (o.rows < 1) throw Error("quant fidelity: rows must be >= 1, got " + std::to_string(o.rows));
  if (o.threads < 0) throw Error("quant fidelity: threads must be >= 0, got " + std::to_string(o.threads));
  if (!isa_supported(o.isa)) throw Error(std::string("quant fidelity: kernel ") + linear_isa_name(o.isa) + " is not supported by this CPU");
  const int H = config.hidden_size, F = config.moe_intermediate_size, E = config.n_routed_experts;
  const ExpertLayout L = expert_layout(o.dtype, H, F, o.group);

  FidelityResult res;
  res.experts = E;
  const bool shared_rows = o.x && o.x_layers == 1;
  const size_t layer_values = static_cast<size_t>(o.rows) * H;
  std::vector<std::vector<float>> inputs;  // per MoE layer (one shared copy when the caller gave one set of rows)
  for (int l = 0; l < static_cast<int>(weights.layers.size()); ++l) {
    const LayerWeights& lw = weights.layers[static_cast<size_t>(l)];
    if (!lw.moe) continue;
    if (static_cast<int>(lw.experts.size()) != E) throw Error("quant fidelity: layer " + std::to_string(l) + " has the wrong expert count");
    res.layers.push_back(l);
    if (shared_rows) {
      if (inputs.empty()) inputs.emplace_back(o.x, o.x + layer_values);
    } else if (o.x) {
      // past x's last layer nothing is read: the count check below refuses the call
      if (static_cast<int>(inputs.size()) < o.x_layers) inputs.emplace_back(o.x + inputs.size() * layer_values, o.x + (inputs.size() + 1) * layer_values);
    } else {
      inputs.push_back(random_rows(o.rows, H, lw.post_norm, config.rms_norm_eps, o.seed, l));
    }
  }
  if (o.x && !shared_rows && static_cast<int>(res.layers.size()) != o.x_layers) {
    throw Error("quant fidelity: x holds rows for " + std::to_string(o.x_layers) + " layers, the model has " + std::to_string(res.layers.size()) + " MoE layers");
  }
  const int total = static_cast<int>(res.layers.size()) * E;
  res.errors.assign(static_cast<size_t>(total), 0.0);
  if (total == 0) return res;

  const int threads = std::max(1, std::min(total, o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency())));
  std::atomic<int> next{0};
  std::mutex progress_mutex;
  int done = 0;
  auto worker = [&](int64_t, int64_t) {
    std::vector<uint8_t> blob(L.bytes);
    std::vector<float> y_ref(static_cast<size_t>(o.rows) * H), y_q(y_ref.size());
    FfnScratch scratch;
    try {
    for (int i; (i = next.fetch_add(1)) < total;) {
      const int li = i / E, e = i % E;
      const MlpWeights& w = weights.layers[static_cast<size_t>(res.layers[static_cast<size_t>(li)])].experts[static_cast<size_t>(e)];
      const float* x = inputs[shared_rows ? 0 : static_cast<size_t>(li)].data();
      quantize_expert(L, w.gate, w.up, w.down, blob.data(), o.int4_fit);
      mlp_forward(x, o.rows, w, y_ref.data(), false, 1.f, nullptr, scratch, o.isa);
      expert_ffn_q_forward(x, o.rows, L, blob.data(), y_q.data(), false, 1.f, nullptr, scratch, o.isa);
      res.errors[static_cast<size_t>(i)] = relative_error(y_q, y_ref);
      if (o.progress) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        o.progress(++done, total);
      }
    }
    } catch (...) {
      next.store(total);  // the others stop at their next task; parallel_for rethrows this
      throw;
    }
  };
  ThreadPool pool(threads);
  pool.parallel_for(threads, 1, worker);  // one chunk per thread; the tasks come from `next`
  return res;
}

}  // namespace moe::quant
