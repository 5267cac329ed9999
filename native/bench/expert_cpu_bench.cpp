// Times one routed expert of DeepSeek-V2-Lite on the CPU (gate/up [1408, 2048], down [2048, 1408]):
// the work the offloading runtime does when it computes a missed expert on the CPU. For each expert
// dtype asked for (bf16: mlp_forward on the bf16 weights; int8 / int4: expert_ffn_q_forward on the
// same experts quantized, issue 13), 1, 4 and 16 tokens, 1..N threads and each kernel this CPU runs,
// it reports the median time per expert and the effective weight bandwidth (the dtype's blob bytes /
// time), "hot" (the same expert again and again, weights in cache) and "cold" (cycling through a pool
// of experts larger than the last-level cache, as missed experts are). Prints a table, a side-by-side
// table of the dtypes at the largest thread count, and writes JSON.
//
//   expert_cpu_bench --json out.json [--dtype bf16,int8,int4] [--group 64] [--max-threads 16] [--pool 48]
//                    [--min-seconds 0.3] [--kernels gpu-order,avx512bf16,avx512,avx2,scalar]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_args.h"
#include "bench_output.h"
#include "moe/cpu_features.h"
#include "moe/kernels.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/expert_kernels.h"
#include "moe/quant/quantize.h"

using namespace moe;
using moe::bench::arg;

namespace {

constexpr int kHidden = 2048, kFf = 1408;

struct Expert {
  std::vector<uint16_t> gate, up, down;
  MlpWeights w;
};

struct Result {
  std::string dtype, kernel, mode;
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

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    const size_t b = std::min(s.find(',', a), s.size());
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

// One dtype's pool: the bf16 experts themselves, or their quantized blobs (one allocation).
struct DtypePool {
  quant::ExpertLayout layout;
  std::vector<uint8_t> blobs;  // empty for bf16
  const uint8_t* blob(size_t e) const { return blobs.data() + e * layout.bytes; }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string json = arg(argc, argv, "--json", "");
    if (json.empty()) {
      std::fprintf(stderr,
                   "usage: expert_cpu_bench --json OUT.json [--dtype bf16,int8,int4] [--group 64] [--max-threads N] [--pool EXPERTS]\n"
                   "                        [--min-seconds S] [--kernels avx512bf16,avx512,avx2,scalar]\n");
      return 2;
    }
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int max_threads = std::stoi(arg(argc, argv, "--max-threads", std::to_string(hw)));
    const int pool_size = std::stoi(arg(argc, argv, "--pool", "48"));
    const double min_seconds = std::stod(arg(argc, argv, "--min-seconds", "0.3"));
    const int group = std::stoi(arg(argc, argv, "--group", std::to_string(quant::kDefaultInt4Group)));
    if (max_threads < 1 || pool_size < 1 || !(min_seconds > 0)) throw std::runtime_error("bad --max-threads, --pool or --min-seconds");
    std::vector<quant::ExpertDType> dtypes;
    for (const std::string& d : split(arg(argc, argv, "--dtype", "bf16"))) dtypes.push_back(quant::parse_expert_dtype(d));
    if (dtypes.empty()) throw std::runtime_error("--dtype: give bf16, int8 and/or int4 (comma-separated)");

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
    std::vector<DtypePool> pools;
    for (quant::ExpertDType dt : dtypes) {
      DtypePool p;
      p.layout = quant::expert_layout(dt, kHidden, kFf, group);
      if (dt != quant::ExpertDType::BF16) {
        std::printf("quantizing the pool to %s (%.1f MB per expert)...\n", quant::expert_dtype_name(dt), p.layout.bytes * 1e-6);
        p.blobs.resize(experts.size() * p.layout.bytes);
        ThreadPool qpool(hw);
        qpool.parallel_for(static_cast<int64_t>(experts.size()), 1, [&](int64_t a, int64_t b) {
          for (int64_t e = a; e < b; ++e) {
            const Expert& x = experts[static_cast<size_t>(e)];
            quant::quantize_expert(p.layout, x.w.gate, x.w.up, x.w.down, p.blobs.data() + static_cast<size_t>(e) * p.layout.bytes);
          }
        });
      }
      pools.push_back(std::move(p));
    }

    const std::string kernels_arg = arg(argc, argv, "--kernels", "");
    // gpu-order: mlp_forward_gpu_order's AVX-512 version (bf16 only), the kernel the CUDA runtime computes
    // bf16 misses with (it rounds as the GPU's decode kernel); the others are mlp_forward's ISAs.
    struct Kernel {
      std::string name;
      LinearIsa isa;
      bool gpu_order;
    };
    std::vector<Kernel> kernels;
    auto wanted = [&](const std::string& name) {
      bool w = kernels_arg.empty();
      for (const std::string& k : split(kernels_arg)) w = w || k == name;
      return w;
    };
    if (gpu_order_vectorized() && wanted("gpu-order")) kernels.push_back({"gpu-order", LinearIsa::Avx512, true});
    for (LinearIsa isa : {LinearIsa::Avx512Bf16, LinearIsa::Avx512, LinearIsa::Avx2, LinearIsa::Scalar}) {
      if (isa_supported(isa) && wanted(linear_isa_name(isa))) kernels.push_back({linear_isa_name(isa), isa, false});
    }
    if (kernels.empty()) throw std::runtime_error("--kernels: none of '" + kernels_arg + "' runs on this CPU");
    std::vector<int> thread_counts;
    for (int t = 1; t < max_threads; t *= 2) thread_counts.push_back(t);
    thread_counts.push_back(max_threads);

    std::vector<Result> results;
    std::printf("\n%-5s %-11s %-5s %6s %7s %10s %10s %9s\n", "dtype", "kernel", "mode", "tokens", "threads", "median ms", "min ms", "GB/s");
    for (const DtypePool& dp : pools) {
      const bool bf16 = dp.layout.dtype == quant::ExpertDType::BF16;
      const char* dname = quant::expert_dtype_name(dp.layout.dtype);
      for (const Kernel& kernel : kernels) {
        if (kernel.gpu_order && !bf16) continue;
        const LinearIsa isa = kernel.isa;
        for (int threads : thread_counts) {
          ThreadPool pool(threads);
          for (int tokens : {1, 4, 16}) {
            std::vector<float> x(static_cast<size_t>(tokens) * kHidden), y(x.size());
            for (size_t i = 0; i < x.size(); ++i) x[i] = (static_cast<float>(i % 97) - 48.f) * 0.01f;
            FfnScratch scratch;
            auto run = [&](size_t e) {
              if (kernel.gpu_order) mlp_forward_gpu_order(x.data(), tokens, experts[e].w, y.data(), false, 1.f, &pool, scratch, true);
              else if (bf16) mlp_forward(x.data(), tokens, experts[e].w, y.data(), false, 1.f, &pool, scratch, isa);
              else quant::expert_ffn_q_forward(x.data(), tokens, dp.layout, dp.blob(e), y.data(), false, 1.f, &pool, scratch, isa);
            };
            for (const char* mode : {"hot", "cold"}) {
              const bool cold = std::string(mode) == "cold";
              std::vector<double> ms;
              size_t next = 0;
              run(0);  // warm-up
              const auto start = std::chrono::steady_clock::now();
              while (ms.size() < 10 || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_seconds) {
                const size_t e = cold ? next++ % experts.size() : 0;
                const auto t0 = std::chrono::steady_clock::now();
                run(e);
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
                if (ms.size() > 20000) break;
              }
              std::sort(ms.begin(), ms.end());
              Result r{dname, kernel.name, mode, tokens, threads, static_cast<int>(ms.size()), ms[ms.size() / 2], ms[0], 0};
              r.gbps = static_cast<double>(dp.layout.bytes) / (r.median_ms * 1e-3) / 1e9;
              results.push_back(r);
              std::printf("%-5s %-11s %-5s %6d %7d %10.3f %10.3f %9.1f\n", dname, r.kernel.c_str(), mode, tokens, threads, r.median_ms, r.min_ms,
                          r.gbps);
            }
          }
        }
      }
    }

    // Side by side: median ms per expert of every dtype at the largest thread count.
    std::printf("\nmedian ms per expert at %d threads (x: speed-up over bf16)\n%-11s %-5s %6s", max_threads, "kernel", "mode", "tokens");
    for (const DtypePool& dp : pools) std::printf(" %9s", quant::expert_dtype_name(dp.layout.dtype));
    std::printf("\n");
    for (const Kernel& kernel : kernels) {
      for (const char* mode : {"hot", "cold"}) {
        for (int tokens : {1, 4, 16}) {
          std::printf("%-11s %-5s %6d", kernel.name.c_str(), mode, tokens);
          double base = 0;
          for (const DtypePool& dp : pools) {
            for (const Result& r : results) {
              if (r.dtype == quant::expert_dtype_name(dp.layout.dtype) && r.kernel == kernel.name && r.mode == mode &&
                  r.tokens == tokens && r.threads == max_threads) {
                if (dp.layout.dtype == quant::ExpertDType::BF16) base = r.median_ms;
                if (base > 0 && dp.layout.dtype != quant::ExpertDType::BF16) std::printf(" %6.3f %4.1fx", r.median_ms, base / r.median_ms);
                else std::printf(" %9.3f", r.median_ms);
              }
            }
          }
          std::printf("\n");
        }
      }
    }

    {
      std::ostringstream f;
      f << "{\n  \"benchmark\": \"expert_cpu_bench\",\n  \"expert\": {\"hidden\": " << kHidden << ", \"d_ff\": " << kFf
        << ", \"int4_group\": " << group << "},\n  \"dtypes\": [";
      for (size_t i = 0; i < pools.size(); ++i) {
        f << (i ? ", " : "") << "{\"dtype\": \"" << quant::expert_dtype_name(pools[i].layout.dtype) << "\", \"bytes\": " << pools[i].layout.bytes << "}";
      }
      f << "],\n"
        << "  \"cpu_features\": \"" << cpu_features().describe() << "\",\n  \"hardware_threads\": " << hw
        << ",\n  \"cold_pool_experts\": " << pool_size << ",\n  \"results\": [\n";
      for (size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        f << "    {\"dtype\": \"" << r.dtype << "\", \"kernel\": \"" << r.kernel << "\", \"mode\": \"" << r.mode << "\", \"tokens\": " << r.tokens
          << ", \"threads\": " << r.threads << ", \"iterations\": " << r.iterations << ", \"median_ms\": " << r.median_ms
          << ", \"min_ms\": " << r.min_ms << ", \"gbps\": " << r.gbps << "}" << (i + 1 < results.size() ? "," : "") << "\n";
      }
      f << "  ]\n}\n";
      bench::write_text_atomic(json, f.str());
    }
    std::printf("\nwrote %s\n", json.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expert_cpu_bench: %s\n", e.what());
    return 1;
  }
}
