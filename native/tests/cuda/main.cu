// cuda_kernel_tests: checks every kernel of native/src/cuda against a CPU reference (fp32/fp64),
// then (with --bench) times each at DeepSeek-V2-Lite shapes. Prints a table last; --json PATH writes
// all figures (atomically: temp file + rename). Exit status 1 if any check fails or throws.
//
//   cuda_kernel_tests [--bench] [--no-tests] [--quick] [--seed N] [--json PATH]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "test_util.h"

namespace moe::cuda::test {
void run_elementwise_tests(Context&);
void run_attention_tests(Context&);
void run_ffn_tests(Context&);
void run_ffn_quant_tests(Context&);
void run_sampling_tests(Context&);
void run_elementwise_bench(Context&);
void run_attention_bench(Context&);
void run_ffn_bench(Context&);
void run_ffn_quant_bench(Context&);
void run_sampling_bench(Context&);
}  // namespace moe::cuda::test

using namespace moe::cuda::test;

namespace {

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') { o += '\\'; o += c; }
    else if (c == '\n') o += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o;
}

struct DeviceInfo {
  std::string name;
  int sms = 0;
  double mem_gb = 0, l2_mb = 0;
  int cc_major = 0, cc_minor = 0;
};

void write_json(const std::string& path, const DeviceInfo& d, const Context& ctx, bool ran_tests, bool ran_bench) {
  const std::string tmp = path + ".partial";
  {
    std::ofstream f(tmp);
    f << "{\n  \"device\": {\"name\": \"" << json_escape(d.name) << "\", \"sms\": " << d.sms << ", \"memory_gb\": " << d.mem_gb
      << ", \"l2_mb\": " << d.l2_mb << ", \"compute_capability\": \"" << d.cc_major << "." << d.cc_minor << "\"},\n";
    f << "  \"seed\": " << ctx.seed << ",\n  \"ran_tests\": " << (ran_tests ? "true" : "false")
      << ",\n  \"ran_bench\": " << (ran_bench ? "true" : "false") << ",\n  \"checks\": [\n";
    for (size_t i = 0; i < ctx.checks.size(); ++i) {
      const CheckResult& c = ctx.checks[i];
      f << "    {\"name\": \"" << json_escape(c.name) << "\", \"pass\": " << (c.pass ? "true" : "false")
        << ", \"max_abs_err\": " << c.max_abs << ", \"max_rel_err\": " << c.max_rel << ", \"checked\": " << c.checked
        << ", \"bad\": " << c.bad << ", \"atol\": " << c.atol << ", \"rtol\": " << c.rtol << ", \"note\": \""
        << json_escape(c.note) << "\"}" << (i + 1 < ctx.checks.size() ? "," : "") << "\n";
    }
    f << "  ],\n  \"benchmarks\": [\n";
    for (size_t i = 0; i < ctx.benches.size(); ++i) {
      const BenchResult& b = ctx.benches[i];
      const double s = b.median_us * 1e-6;
      f << "    {\"name\": \"" << json_escape(b.name) << "\", \"shape\": \"" << json_escape(b.shape)
        << "\", \"median_us\": " << b.median_us << ", \"min_us\": " << b.min_us << ", \"bytes\": " << b.bytes
        << ", \"flops\": " << b.flops << ", \"gb_per_s\": " << (s > 0 ? b.bytes / s / 1e9 : 0)
        << ", \"tflop_per_s\": " << (s > 0 ? b.flops / s / 1e12 : 0) << "}" << (i + 1 < ctx.benches.size() ? "," : "") << "\n";
    }
    f << "  ]\n}\n";
    if (!f) throw std::runtime_error("could not write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("could not rename " + tmp + " to " + path);
}

template <typename F>
void guarded(Context& ctx, const char* group, F&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("== %s\n", group);
  std::fflush(stdout);
  try {
    fn(ctx);
  } catch (const std::exception& e) {
    std::printf("    EXCEPTION in %s: %s\n", group, e.what());
    CheckResult r{std::string(group) + " (exception)"};
    r.pass = false;
    r.note = e.what();
    ctx.checks.push_back(r);
    cudaGetLastError();  // clear a sticky launch error where possible
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("   (%.1f s)\n", s);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = false, tests = true;
  std::string json;
  Context ctx;
  ctx.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--bench") bench = true;
    else if (a == "--no-tests") tests = false;
    else if (a == "--quick") ctx.quick = true;
    else if (a == "--seed" && i + 1 < argc) ctx.seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--json" && i + 1 < argc) json = argv[++i];
    else {
      std::fprintf(stderr, "cuda_kernel_tests: unknown option '%s'\nusage: cuda_kernel_tests [--bench] [--no-tests] [--quick] [--seed N] [--json PATH]\n", a.c_str());
      return 2;
    }
  }
  DeviceInfo dev;
  try {
    int n = 0;
    CUDA_CHECK(cudaGetDeviceCount(&n));
    if (n == 0) throw std::runtime_error("no CUDA device");
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    dev = {p.name, p.multiProcessorCount, p.totalGlobalMem / 1e9, p.l2CacheSize / 1e6, p.major, p.minor};
    CUDA_CHECK(cudaStreamCreate(&ctx.stream));
    CUBLAS_CHECK(cublasCreate(&ctx.cublas));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_kernel_tests: cannot start: %s\n", e.what());
    return 1;
  }
  std::printf("device: %s, %d SMs, %.1f GB, L2 %.1f MB, cc %d.%d; seed %llu (rerun with --seed to reproduce)\n",
              dev.name.c_str(), dev.sms, dev.mem_gb, dev.l2_mb, dev.cc_major, dev.cc_minor,
              static_cast<unsigned long long>(ctx.seed));
  if (tests) {
    guarded(ctx, "elementwise: rmsnorm, rope_yarn, mla_cache_append, silu_mul, embedding, router_topk", run_elementwise_tests);
    guarded(ctx, "attention: mla_attention_prefill, mla_attention_decode", run_attention_tests);
    guarded(ctx, "ffn: expert_ffn_grouped, linear_cublas", run_ffn_tests);
    guarded(ctx, "ffn quant: expert_ffn_decode_q, expert_ffn_grouped_q, dequantize_expert_bf16", run_ffn_quant_tests);
    guarded(ctx, "sampling", run_sampling_tests);
  }
  if (bench) {
    guarded(ctx, "bench: elementwise", run_elementwise_bench);
    guarded(ctx, "bench: attention", run_attention_bench);
    guarded(ctx, "bench: ffn", run_ffn_bench);
    guarded(ctx, "bench: ffn quant (bf16 vs int8 vs int4)", run_ffn_quant_bench);
    guarded(ctx, "bench: sampling", run_sampling_bench);
  }
  int failed = 0;
  if (!ctx.benches.empty()) {
    std::printf("\n%-28s %-40s %10s %10s %9s %9s\n", "benchmark", "shape", "median us", "min us", "GB/s", "TFLOP/s");
    for (const BenchResult& b : ctx.benches) {
      const double s = b.median_us * 1e-6;
      std::printf("%-28s %-40s %10.1f %10.1f %9.0f %9.1f\n", b.name.c_str(), b.shape.c_str(), b.median_us, b.min_us,
                  s > 0 ? b.bytes / s / 1e9 : 0, s > 0 ? b.flops / s / 1e12 : 0);
    }
  }
  if (!ctx.checks.empty()) {
    std::printf("\n%-36s %6s %12s %12s %10s %8s\n", "check", "result", "max abs err", "max rel err", "checked", "bad");
    for (const CheckResult& c : ctx.checks) {
      std::printf("%-36s %6s %12.3g %12.3g %10zu %8zu\n", c.name.c_str(), c.pass ? "PASS" : "FAIL", c.max_abs, c.max_rel,
                  c.checked, c.bad);
      failed += !c.pass;
    }
    std::printf("%d passed, %d failed\n", static_cast<int>(ctx.checks.size()) - failed, failed);
  }
  if (!json.empty()) {
    try {
      write_json(json, dev, ctx, tests, bench);
      std::printf("wrote %s\n", json.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cuda_kernel_tests: %s\n", e.what());
      failed += 1;
    }
  }
  cublasDestroy(ctx.cublas);
  cudaStreamDestroy(ctx.stream);
  return failed == 0 ? 0 : 1;
}
