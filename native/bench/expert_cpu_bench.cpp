// Times one routed expert of DeepSeek-V2-Lite on the CPU (gate/up [1408, 2048], down [2048, 1408],
// bf16 weights): the work the offloading runtime does when it computes a missed expert on the CPU.
// For 1, 4 and 16 tokens, 1..N threads and each kernel this CPU runs, it reports the median time
// per expert and the effective weight bandwidth (17.3 MB / time), "hot" (the same expert again
// and again, weights in cache) and "cold" (cycling through a pool of experts larger than the
// last-level cache, as missed experts are). Prints a table and writes JSON.
//
//   expert_cpu_bench --json out.json [--max-threads 16] [--pool 48] [--min-seconds 0.3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "moe/cpu_features.h"
#include "moe/kernels.h"

using namespace moe;

namespace {

constexpr int kHidden = 2048, kFf = 1408;

struct Expert {
  std::vector<uint16_t> gate, up, down;
  MlpWeights w;
};

struct Result {
  std::string kernel, mode;
  int tokens, threads, iterations;
  double median_ms, min_ms, gbps;
};

uint64_t lcg(uint64_t& s) {
  s = s * 6364136223846793005ull + 1442695040888963407ull;
  return s >> 33;
}

void fill(std::vector<uint16_t>& v, size_t n, uint64_t& s) {
  v.resize(n);
  for (uint16_t& x : v) x = f32_to_bf16((static_cast<float>(lcg(s) % 2001) - 1000.f) * 2e-5f);
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return argv[i + 1];
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string json = arg(argc, argv, "--json", "");
    if (json.empty()) {
      std::fprintf(stderr, "usage: expert_cpu_bench --json OUT.json [--max-threads N] [--pool EXPERTS] [--min-seconds S]\n");
      return 2;
    }
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int max_threads = std::stoi(arg(argc, argv, "--max-threads", std::to_string(hw)));
    const int pool_size = std::stoi(arg(argc, argv, "--pool", "48"));
    const double min_seconds = std::stod(arg(argc, argv, "--min-seconds", "0.3"));
    if (max_threads < 1 || pool_size < 1 || !(min_seconds > 0)) throw std::runtime_error("bad --max-threads, --pool or --min-seconds");

    std::printf("CPU features: %s; hardware threads: %d\n", cpu_features().describe().c_str(), hw);
    std::printf("allocating %d experts (%.1f GB) for the cold runs...\n", pool_size, pool_size * 17.301504e-3);
    std::vector<Expert> experts(static_cast<size_t>(pool_size));
    uint64_t seed = 1;
    for (Expert& e : experts) {
      fill(e.gate, static_cast<size_t>(kFf) * kHidden, seed);
      fill(e.up, static_cast<size_t>(kFf) * kHidden, seed);
      fill(e.down, static_cast<size_t>(kHidden) * kFf, seed);
      e.w.gate = Matrix{e.gate.data(), DType::BF16, kFf, kHidden};
      e.w.up = Matrix{e.up.data(), DType::BF16, kFf, kHidden};
      e.w.down = Matrix{e.down.data(), DType::BF16, kHidden, kFf};
    }
    const double expert_bytes = 3.0 * kFf * kHidden * 2;

    std::vector<LinearIsa> kernels;
    for (LinearIsa isa : {LinearIsa::Avx512Bf16, LinearIsa::Avx512, LinearIsa::Avx2, LinearIsa::Scalar}) {
      if (isa_supported(isa)) kernels.push_back(isa);
    }
    std::vector<int> thread_counts;
    for (int t = 1; t < max_threads; t *= 2) thread_counts.push_back(t);
    thread_counts.push_back(max_threads);

    std::vector<Result> results;
    std::printf("\n%-11s %-5s %6s %7s %10s %10s %9s\n", "kernel", "mode", "tokens", "threads", "median ms", "min ms", "GB/s");
    for (LinearIsa isa : kernels) {
      for (int threads : thread_counts) {
        ThreadPool pool(threads);
        for (int tokens : {1, 4, 16}) {
          std::vector<float> x(static_cast<size_t>(tokens) * kHidden), y(x.size());
          for (size_t i = 0; i < x.size(); ++i) x[i] = (static_cast<float>(i % 97) - 48.f) * 0.01f;
          FfnScratch scratch;
          for (const char* mode : {"hot", "cold"}) {
            const bool cold = std::string(mode) == "cold";
            std::vector<double> ms;
            size_t next = 0;
            mlp_forward(x.data(), tokens, experts[0].w, y.data(), false, 1.f, &pool, scratch, isa);  // warm-up
            const auto start = std::chrono::steady_clock::now();
            while (ms.size() < 10 || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_seconds) {
              const Expert& e = experts[cold ? next++ % experts.size() : 0];
              const auto t0 = std::chrono::steady_clock::now();
              mlp_forward(x.data(), tokens, e.w, y.data(), false, 1.f, &pool, scratch, isa);
              ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
              if (ms.size() > 20000) break;
            }
            std::sort(ms.begin(), ms.end());
            Result r{linear_isa_name(isa), mode, tokens, threads, static_cast<int>(ms.size()), ms[ms.size() / 2], ms[0], 0};
            r.gbps = expert_bytes / (r.median_ms * 1e-3) / 1e9;
            results.push_back(r);
            std::printf("%-11s %-5s %6d %7d %10.3f %10.3f %9.1f\n", r.kernel.c_str(), mode, tokens, threads, r.median_ms, r.min_ms, r.gbps);
          }
        }
      }
    }

    const std::string tmp = json + ".partial";
    {
      std::ofstream f(tmp);
      f << "{\n  \"benchmark\": \"expert_cpu_bench\",\n  \"expert\": {\"hidden\": " << kHidden << ", \"d_ff\": " << kFf
        << ", \"dtype\": \"bf16\", \"bytes\": " << static_cast<long long>(expert_bytes) << "},\n"
        << "  \"cpu_features\": \"" << cpu_features().describe() << "\",\n  \"hardware_threads\": " << hw
        << ",\n  \"cold_pool_experts\": " << pool_size << ",\n  \"results\": [\n";
      for (size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        f << "    {\"kernel\": \"" << r.kernel << "\", \"mode\": \"" << r.mode << "\", \"tokens\": " << r.tokens
          << ", \"threads\": " << r.threads << ", \"iterations\": " << r.iterations << ", \"median_ms\": " << r.median_ms
          << ", \"min_ms\": " << r.min_ms << ", \"gbps\": " << r.gbps << "}" << (i + 1 < results.size() ? "," : "") << "\n";
      }
      f << "  ]\n}\n";
      if (!f) throw std::runtime_error("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), json.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + json);
    std::printf("\nwrote %s\n", json.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expert_cpu_bench: %s\n", e.what());
    return 1;
  }
}
