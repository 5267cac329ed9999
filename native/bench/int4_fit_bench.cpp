// How the int4 quantizer chooses each group's scale and zero (quantize.h Int4Fit), measured side by side
// in one run on experts of DeepSeek-V2-Lite's shape: round-to-nearest over [min, max] (Nearest, the quantizer
// before 2026-12-05) against the window search (Search, what every load now uses).
//   - weight error: ||W_q - W|| / ||W|| over the expert's three matrices;
//   - expert output error: ||y_q - y_bf16|| / ||y_bf16|| through moe::quant::expert_fidelity (the same
//     measure as `bench --check-quant`), on seeded random normed rows;
//   - the time to quantize one expert on one thread (the load spreads experts over the host's threads).
// Weights are drawn as the synthetic checkpoints' are (normal, std 1 / sqrt(fan_in), bf16): random weights
// say what the quantizer does to bell-shaped groups, not what a format costs a trained model.
// Usage: int4_fit_bench [--experts 16] [--group 64] [--rows 16] [--hidden 2048] [--d-ff 1408] [--json F]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_args.h"
#include "bench_output.h"
#include "moe/error.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/fidelity.h"
#include "moe/quant/quantize.h"

using namespace moe;
using namespace moe::quant;

namespace {

struct Expert {
  std::vector<uint16_t> g, u, d;
};

struct FitResult {
  const char* name;
  std::vector<double> output_errors;  // per expert
  double weight_error = 0;            // over every expert
  double ms_per_expert = 0;
};

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::min<double>(v.size() - 1, std::floor(q * (v.size() - 1) + 0.5)))];
}

int run(int argc, char** argv) {
  const int E = std::stoi(bench::arg(argc, argv, "--experts", "16"));
  const int group = std::stoi(bench::arg(argc, argv, "--group", "64"));
  const int rows = std::stoi(bench::arg(argc, argv, "--rows", "16"));
  const int H = std::stoi(bench::arg(argc, argv, "--hidden", "2048"));
  const int F = std::stoi(bench::arg(argc, argv, "--d-ff", "1408"));
  const std::string json = bench::arg(argc, argv, "--json", "");
  if (E < 1 || rows < 1 || H < 1 || F < 1) throw Error("int4_fit_bench: --experts, --rows, --hidden and --d-ff must be >= 1");
  const ExpertLayout L = expert_layout(ExpertDType::INT4, H, F, group);  // refuses a group that does not divide

  std::mt19937_64 rng(2026);
  std::vector<Expert> store(static_cast<size_t>(E));
  ModelConfig config;
  config.hidden_size = H;
  config.moe_intermediate_size = F;
  config.n_routed_experts = E;
  config.rms_norm_eps = 1e-6;
  ModelWeights w;
  w.layers.resize(2);  // layer 0 dense (unused), layer 1 the MoE layer
  LayerWeights& layer = w.layers[1];
  layer.moe = true;
  layer.post_norm.assign(static_cast<size_t>(H), 1.f);
  auto fill = [&](std::vector<uint16_t>& v, size_t n, int fan_in) {
    std::normal_distribution<float> normal(0.f, 1.f / std::sqrt(static_cast<float>(fan_in)));
    v.resize(n);
    for (uint16_t& x : v) x = f32_to_bf16(normal(rng));
  };
  for (Expert& x : store) {
    fill(x.g, static_cast<size_t>(F) * H, H);
    fill(x.u, static_cast<size_t>(F) * H, H);
    fill(x.d, static_cast<size_t>(H) * F, F);
    MlpWeights m;
    m.gate = Matrix{x.g.data(), DType::BF16, F, H};
    m.up = Matrix{x.u.data(), DType::BF16, F, H};
    m.down = Matrix{x.d.data(), DType::BF16, H, F};
    layer.experts.push_back(m);
  }

  std::vector<FitResult> results = {{"nearest", {}, 0, 0}, {"search", {}, 0, 0}};
  for (FitResult& r : results) {
    const Int4Fit fit = std::string(r.name) == "search" ? Int4Fit::Search : Int4Fit::Nearest;
    std::fprintf(stderr, "int4_fit_bench: %s, %d experts of [%d, %d] ...\n", r.name, E, H, F);
    // Weight error and the time to quantize, one thread.
    std::vector<uint8_t> blob(L.bytes);
    std::vector<float> got(static_cast<size_t>(std::max(H, F))), want(got.size());
    double se = 0, sw = 0, ms = 0;
    for (const MlpWeights& m : layer.experts) {
      const auto t0 = std::chrono::steady_clock::now();
      quantize_expert(L, m.gate, m.up, m.down, blob.data(), fit);
      ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const Matrix* parts[3] = {&m.gate, &m.up, &m.down};
      for (int p = 0; p < 3; ++p) {
        for (int row = 0; row < parts[p]->rows; ++row) {
          dequantize_row(L, blob.data(), static_cast<Part>(p), row, got.data());
          matrix_row_to_f32(*parts[p], row, want.data());
          for (int c = 0; c < parts[p]->cols; ++c) {
            const double dd = static_cast<double>(got[static_cast<size_t>(c)]) - want[static_cast<size_t>(c)];
            se += dd * dd, sw += static_cast<double>(want[static_cast<size_t>(c)]) * want[static_cast<size_t>(c)];
          }
        }
      }
    }
    r.weight_error = std::sqrt(se / sw);
    r.ms_per_expert = ms / E;
    FidelityOptions o;
    o.dtype = ExpertDType::INT4;
    o.group = group;
    o.rows = rows;
    o.seed = 1;
    o.int4_fit = fit;
    r.output_errors = expert_fidelity(config, w, o).errors;
  }

  std::printf("\nint4 g%d, %d experts of [%d, %d], %d random normed rows each\n\n", group, E, H, F, rows);
  std::printf("| quantizer | weight error | output error p50 | p90 | max | ms to quantize one expert (1 thread) |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (const FitResult& r : results) {
    std::printf("| %s | %.3f%% | %.2f%% | %.2f%% | %.2f%% | %.0f |\n", r.name, 100 * r.weight_error, 100 * quantile(r.output_errors, 0.5),
                100 * quantile(r.output_errors, 0.9), 100 * quantile(r.output_errors, 1.0), r.ms_per_expert);
  }
  if (!json.empty()) {
    {
      std::ostringstream f;
      f << "{\n  \"bench\": \"int4_fit_bench\",\n  \"weights\": \"normal, std 1/sqrt(fan_in), bf16 (as synth-model)\",\n";
      f << "  \"activations\": \"seeded random rows rmsnorm(N(0,1)), post norm 1\",\n";
      f << "  \"hidden\": " << H << ", \"dFf\": " << F << ", \"group\": " << group << ", \"experts\": " << E << ", \"rows\": " << rows << ",\n  \"fits\": [";
      for (size_t i = 0; i < results.size(); ++i) {
        const FitResult& r = results[i];
        f << (i ? "," : "") << "\n    {\"fit\": \"" << r.name << "\", \"weightError\": " << r.weight_error << ", \"msPerExpert\": " << r.ms_per_expert
          << ", \"outputErrors\": [";
        for (size_t k = 0; k < r.output_errors.size(); ++k) f << (k ? ", " : "") << r.output_errors[k];
        f << "]}";
      }
      f << "\n  ]\n}\n";
      bench::write_text_atomic(json, f.str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "int4_fit_bench: %s\n", e.what());
    return 2;
  }
}
