// Checks and benchmarks of the grouped routed-expert FFN and the cuBLAS linear wrapper.
#include <cmath>
#include <cstdio>
#include <numeric>

#include "test_util.h"
#include "moe/kernels.h"

namespace moe::cuda::test {
namespace {

struct Experts {
  std::vector<HostBf16> gate, up, down;  // host copies (only when checked)
  std::vector<DeviceBuffer<bf16>> dgate, dup, ddown;
  DeviceBuffer<const bf16*> pg, pu, pd;
};

Experts make_experts(Random& rnd, int n, int hidden, int d_ff, bool keep_host) {
  Experts ex;
  std::vector<const bf16*> g, u, d;
  for (int e = 0; e < n; ++e) {
    HostBf16 hg = rnd.bf16_tensor(static_cast<size_t>(d_ff) * hidden, 1.7f / std::sqrt(static_cast<float>(hidden)));
    HostBf16 hu = rnd.bf16_tensor(static_cast<size_t>(d_ff) * hidden, 1.7f / std::sqrt(static_cast<float>(hidden)));
    HostBf16 hd = rnd.bf16_tensor(static_cast<size_t>(hidden) * d_ff, 1.7f / std::sqrt(static_cast<float>(d_ff)));
    ex.dgate.push_back(upload_bf16(hg));
    ex.dup.push_back(upload_bf16(hu));
    ex.ddown.push_back(upload_bf16(hd));
    g.push_back(ex.dgate.back().get());
    u.push_back(ex.dup.back().get());
    d.push_back(ex.ddown.back().get());
    if (keep_host) {
      ex.gate.push_back(std::move(hg));
      ex.up.push_back(std::move(hu));
      ex.down.push_back(std::move(hd));
    }
  }
  ex.pg = DeviceBuffer<const bf16*>(n);
  ex.pu = DeviceBuffer<const bf16*>(n);
  ex.pd = DeviceBuffer<const bf16*>(n);
  ex.pg.upload(g);
  ex.pu.upload(u);
  ex.pd.upload(d);
  return ex;
}

// Distinct experts per token, random weights (as after the router).
void random_routing(Random& rnd, int rows, int k, int n_experts, std::vector<int32_t>& ids, std::vector<float>& w,
                    bool skewed) {
  ids.resize(static_cast<size_t>(rows) * k);
  w.resize(ids.size());
  std::vector<int> perm(n_experts);
  for (int t = 0; t < rows; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rnd.gen);
    if (skewed && t % 4 != 0) {  // most tokens pick expert 0: one group spans many 64-row tiles
      auto it = std::find(perm.begin(), perm.end(), 0);
      std::iter_swap(perm.begin(), it);
    }
    for (int j = 0; j < k; ++j) {
      ids[t * k + j] = perm[j];
      w[t * k + j] = 0.05f + std::fabs(rnd.uniform(0.3f));
    }
  }
}

// A routed batch: activations [rows, x_stride] and the routing, on the host and uploaded.
struct RoutedInput {
  HostBf16 x;
  std::vector<int32_t> ids;
  std::vector<float> w;
  DeviceBuffer<bf16> dx;
  DeviceBuffer<int32_t> dids;
  DeviceBuffer<float> dw;
  RoutedInput(Random& rnd, int rows, int x_stride, int k, int n_experts, bool skewed)
      : x(rnd.bf16_tensor(static_cast<size_t>(rows) * x_stride, 1.f)) {
    random_routing(rnd, rows, k, n_experts, ids, w, skewed);
    dx = upload_bf16(x);
    dids = DeviceBuffer<int32_t>(ids.size());
    dids.upload(ids);
    dw = DeviceBuffer<float>(w.size());
    dw.upload(w);
  }
};

enum class FfnImpl { Grouped, Gemv, CublasPerExpert };

// The prefill path of the CUDA backend, built from the helpers: group, gather, one cuBLAS GEMM per
// expert for gate|up (stacked here from the separate test tensors' pointers: two GEMMs), SiLU-mul,
// down, scatter-combine. Needs the group sizes on the host (one sync), as the backend does.
void cublas_per_expert(Context& ctx, Experts& ex, const bf16* x, int rows, int x_stride, const int32_t* ids,
                       const float* w, int k, int n_experts, int hidden, int d_ff, float* y, int y_stride,
                       bool accumulate) {
  const int entries = rows * k;
  DeviceBuffer<int32_t> offsets(n_experts + 1), sorted(entries), inv(entries);
  DeviceBuffer<unsigned char> gws(expert_group_workspace_bytes(entries));
  expert_group(ids, entries, n_experts, offsets.get(), sorted.get(), inv.get(), gws.get(), gws.size(), ctx.stream);
  DeviceBuffer<bf16> xs(static_cast<size_t>(entries) * hidden), gu(static_cast<size_t>(entries) * 2 * d_ff),
      hs(static_cast<size_t>(entries) * d_ff);
  DeviceBuffer<float> ys(static_cast<size_t>(entries) * hidden);
  gather_routed_rows(x, x_stride, sorted.get(), k, entries, hidden, xs.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<int32_t> off = offsets.download();
  for (int e = 0; e < n_experts; ++e) {
    const int n = off[e + 1] - off[e];
    if (n == 0) continue;
    const bf16* xe = xs.get() + static_cast<size_t>(off[e]) * hidden;
    bf16* ge = gu.get() + static_cast<size_t>(off[e]) * 2 * d_ff;
    linear_bf16_out_bf16(ctx.cublas, xe, n, hidden, hidden, ex.dgate[e].get(), d_ff, ge, 2 * d_ff, ctx.stream);
    linear_bf16_out_bf16(ctx.cublas, xe, n, hidden, hidden, ex.dup[e].get(), d_ff, ge + d_ff, 2 * d_ff, ctx.stream);
  }
  silu_mul(gu.get(), entries, d_ff, 2 * d_ff, hs.get(), d_ff, ctx.stream);
  for (int e = 0; e < n_experts; ++e) {
    const int n = off[e + 1] - off[e];
    if (n == 0) continue;
    linear_bf16_out_f32(ctx.cublas, hs.get() + static_cast<size_t>(off[e]) * d_ff, n, d_ff, d_ff, ex.ddown[e].get(),
                        hidden, ys.get() + static_cast<size_t>(off[e]) * hidden, hidden, false, ctx.stream);
  }
  scatter_combine_routed(ys.get(), inv.get(), w, rows, k, hidden, y, y_stride, accumulate, ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
}

void check_ffn_case(Context& ctx, Random& rnd, CheckResult& r, Experts& ex, int rows, int k, int n_experts, int hidden,
                    int d_ff, bool skewed, bool accumulate, FfnImpl impl = FfnImpl::Grouped) {
  const int x_stride = hidden + 64, y_stride = hidden + 32;
  RoutedInput in(rnd, rows, x_stride, k, n_experts, skewed);
  const HostBf16& x = in.x;
  const std::vector<int32_t>& ids = in.ids;
  const std::vector<float>& w = in.w;
  DeviceBuffer<bf16>& dx = in.dx;
  DeviceBuffer<int32_t>& dids = in.dids;
  DeviceBuffer<float>& dw = in.dw;
  std::vector<float> y0 = rnd.f32_tensor(static_cast<size_t>(rows) * y_stride, 1.f);
  DeviceBuffer<float> dy(y0.size());
  if (accumulate) dy.upload(y0); else dy.poison();
  if (impl == FfnImpl::CublasPerExpert) {
    cublas_per_expert(ctx, ex, dx.get(), rows, x_stride, dids.get(), dw.get(), k, n_experts, hidden, d_ff, dy.get(),
                      y_stride, accumulate);
  } else {
    const bool gemv = impl == FfnImpl::Gemv;
    const size_t wsb = gemv ? expert_ffn_decode_workspace_bytes(rows, k, n_experts, hidden, d_ff)
                            : expert_ffn_workspace_bytes(rows, k, n_experts, hidden, d_ff);
    DeviceBuffer<unsigned char> ws(wsb);
    ws.poison();
    (gemv ? expert_ffn_decode : expert_ffn_grouped)(dx.get(), rows, x_stride, dids.get(), dw.get(), k, n_experts, hidden,
                                                    d_ff, ex.pg.get(), ex.pu.get(), ex.pd.get(), dy.get(), y_stride,
                                                    accumulate, ws.get(), wsb, ctx.stream);
  }
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<float> all = dy.download(), got;
  std::vector<double> ref;
  std::vector<double> h(d_ff);
  for (int t = 0; t < rows; ++t) {
    std::vector<double> yt(hidden, accumulate ? 0.0 : 0.0);
    for (int j = 0; j < k; ++j) {
      const int e = ids[t * k + j];
      const float* xt = &x.f[static_cast<size_t>(t) * x_stride];
      for (int f = 0; f < d_ff; ++f) {
        double g = 0, u = 0;
        const float* gr = &ex.gate[e].f[static_cast<size_t>(f) * hidden];
        const float* ur = &ex.up[e].f[static_cast<size_t>(f) * hidden];
        for (int c = 0; c < hidden; ++c) {
          g += static_cast<double>(gr[c]) * xt[c];
          u += static_cast<double>(ur[c]) * xt[c];
        }
        h[f] = round_bf16(static_cast<float>(g / (1.0 + std::exp(-g)) * u));  // the kernel keeps h in bf16
      }
      for (int c = 0; c < hidden; ++c) {
        const float* dr = &ex.down[e].f[static_cast<size_t>(c) * d_ff];
        double s = 0;
        for (int f = 0; f < d_ff; ++f) s += dr[f] * h[f];
        yt[c] += w[t * k + j] * s;
      }
    }
    for (int c = 0; c < hidden; ++c) {
      ref.push_back(yt[c] + (accumulate ? y0[static_cast<size_t>(t) * y_stride + c] : 0.0));
      got.push_back(all[static_cast<size_t>(t) * y_stride + c]);
    }
  }
  // fp32 accumulation over K = 2048 and 1408 of bf16 products; h rounded to bf16 in both.
  // Rounding of h near a bf16 tie can flip by one ulp between fp32 and fp64 paths: atol covers it.
  const std::string what = "rows=" + std::to_string(rows) + " E=" + std::to_string(n_experts) + " hidden=" +
                           std::to_string(hidden) + " d_ff=" + std::to_string(d_ff) + (skewed ? " skewed" : "") +
                           (accumulate ? " accumulate" : "");
  compare(r, got, ref, 2e-3, 1e-2, what.c_str());
}

// The CPU expert that rounds as the decode kernel (moe::mlp_forward_gpu_order, src/kernels/expert_gpu_order.h)
// against the kernel itself (expert_ffn_decode_entries: the per-entry outputs, routing weight applied, before
// the combine): equal bit for bit, each expert's tokens computed together as the CPU expert executor does,
// with the scalar reference and, where this host has it, the AVX-512 version. Issue 12: a missed expert
// computed on the CPU then changes no logit of a `--miss cpu|hybrid` run.
void check_gpu_order_case(Context& ctx, Random& rnd, CheckResult& r, Experts& ex, int rows, int k, int n_experts, int hidden,
                          int d_ff, bool skewed) {
  const RoutedInput in(rnd, rows, hidden, k, n_experts, skewed);
  const std::vector<int32_t>& ids = in.ids;
  DeviceBuffer<float> dy(static_cast<size_t>(rows) * hidden), dout(ids.size() * hidden);
  dout.poison();
  const size_t wsb = expert_ffn_decode_workspace_bytes(rows, k, n_experts, hidden, d_ff);
  DeviceBuffer<unsigned char> ws(wsb);
  expert_ffn_decode_entries(in.dx.get(), rows, hidden, in.dids.get(), in.dw.get(), k, n_experts, hidden, d_ff, ex.pg.get(), ex.pu.get(),
                            ex.pd.get(), dy.get(), hidden, false, ws.get(), wsb, ctx.stream, dout.get());
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  const std::vector<float> gpu = dout.download();
  std::vector<bool> paths = {false};
  if (moe::gpu_order_vectorized()) paths.push_back(true);
  for (bool vec : paths) {
    size_t differ = 0, compared = 0;
    moe::FfnScratch scratch;
    for (int e = 0; e < n_experts; ++e) {
      std::vector<int> entries;
      for (size_t i = 0; i < ids.size(); ++i) if (ids[i] == e) entries.push_back(static_cast<int>(i));
      if (entries.empty()) continue;
      const int n = static_cast<int>(entries.size());
      std::vector<float> xs(static_cast<size_t>(n) * hidden), ys(xs.size());
      for (int q = 0; q < n; ++q) std::copy_n(&in.x.f[static_cast<size_t>(entries[q] / k) * hidden], hidden, &xs[static_cast<size_t>(q) * hidden]);
      moe::MlpWeights mw;
      mw.gate = moe::Matrix{ex.gate[e].bits.data(), moe::DType::BF16, d_ff, hidden};
      mw.up = moe::Matrix{ex.up[e].bits.data(), moe::DType::BF16, d_ff, hidden};
      mw.down = moe::Matrix{ex.down[e].bits.data(), moe::DType::BF16, hidden, d_ff};
      moe::mlp_forward_gpu_order(xs.data(), n, mw, ys.data(), false, 1.f, nullptr, scratch, vec);
      for (int q = 0; q < n; ++q) {
        const float rw = in.w[static_cast<size_t>(entries[q])];
        for (int c = 0; c < hidden; ++c) {
          const float cpu = ys[static_cast<size_t>(q) * hidden + c] * rw;  // the executor's row scale, as the kernel's v * rw
          const float g = gpu[static_cast<size_t>(entries[q]) * hidden + c];
          ++compared;
          if (!(cpu == g)) {
            if (differ < 5) std::printf("    [gpu-order %s] entry %d col %d: cpu %.9g gpu %.9g\n", vec ? "avx512" : "scalar", entries[q], c, cpu, g);
            ++differ;
          }
        }
      }
    }
    require(r, differ == 0, "rows=" + std::to_string(rows) + " hidden=" + std::to_string(hidden) + " d_ff=" + std::to_string(d_ff) +
                                (vec ? " avx512" : " scalar") + ": " + std::to_string(differ) + " of " + std::to_string(compared) + " outputs differ");
  }
}

void test_expert_ffn(Context& ctx, Random& rnd) {
  CheckResult r{"expert_ffn_grouped"};
  Experts real = make_experts(rnd, 64, 2048, 1408, true);
  check_ffn_case(ctx, rnd, r, real, 1, 6, 64, 2048, 1408, false, false);   // decode, batch 1, real shape
  check_ffn_case(ctx, rnd, r, real, 16, 6, 64, 2048, 1408, false, true);   // decode, batch 16, onto shared out
  Experts small = make_experts(rnd, 8, 256, 192, true);
  check_ffn_case(ctx, rnd, r, small, 300, 2, 8, 256, 192, true, false);    // groups of > 64 rows (several m-tiles)
  ctx.checks.push_back(r);
  // The engine's decode path (grouped GEMV) and prefill path (cuBLAS per expert), same reference.
  CheckResult rg{"expert_ffn_decode"};
  check_ffn_case(ctx, rnd, rg, real, 1, 6, 64, 2048, 1408, false, false, FfnImpl::Gemv);
  check_ffn_case(ctx, rnd, rg, real, 16, 6, 64, 2048, 1408, false, true, FfnImpl::Gemv);
  check_ffn_case(ctx, rnd, rg, real, 32, 6, 64, 2048, 1408, true, true, FfnImpl::Gemv);   // one expert with 24+ tokens
  check_ffn_case(ctx, rnd, rg, small, 40, 2, 8, 256, 192, true, false, FfnImpl::Gemv);   // d_ff not a multiple of 256
  ctx.checks.push_back(rg);
  CheckResult ro{"expert_ffn_decode vs CPU gpu-order (bits)"};
  check_gpu_order_case(ctx, rnd, ro, real, 1, 6, 64, 2048, 1408, false);
  check_gpu_order_case(ctx, rnd, ro, real, 16, 6, 64, 2048, 1408, true);   // several tokens per expert
  check_gpu_order_case(ctx, rnd, ro, small, 12, 2, 8, 256, 192, false);    // d_ff not a multiple of 256
  ctx.checks.push_back(ro);
  CheckResult rc{"expert_ffn_cublas_per_expert"};
  check_ffn_case(ctx, rnd, rc, real, 300, 6, 64, 2048, 1408, true, true, FfnImpl::CublasPerExpert);
  check_ffn_case(ctx, rnd, rc, small, 300, 2, 8, 256, 192, false, false, FfnImpl::CublasPerExpert);
  ctx.checks.push_back(rc);
}

void test_linear(Context& ctx, Random& rnd) {
  CheckResult r{"linear_cublas"};
  const int rows = 19, in = 2048, out = 576, x_stride = in + 64;
  HostBf16 x = rnd.bf16_tensor(static_cast<size_t>(rows) * x_stride, 1.f);
  HostBf16 W = rnd.bf16_tensor(static_cast<size_t>(out) * in, 0.04f);
  DeviceBuffer<bf16> dx = upload_bf16(x), dW = upload_bf16(W);
  DeviceBuffer<bf16> yb(static_cast<size_t>(rows) * out);
  DeviceBuffer<float> yf(static_cast<size_t>(rows) * out);
  std::vector<float> y0 = rnd.f32_tensor(yf.size(), 1.f);
  yf.upload(y0);
  yb.poison();
  linear_bf16_out_bf16(ctx.cublas, dx.get(), rows, in, x_stride, dW.get(), out, yb.get(), out, ctx.stream);
  linear_bf16_out_f32(ctx.cublas, dx.get(), rows, in, x_stride, dW.get(), out, yf.get(), out, true, ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<double> ref(static_cast<size_t>(rows) * out), ref_acc(ref.size());
  for (int t = 0; t < rows; ++t)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int c = 0; c < in; ++c) s += static_cast<double>(x.f[static_cast<size_t>(t) * x_stride + c]) * W.f[static_cast<size_t>(o) * in + c];
      ref[t * out + o] = s;
      ref_acc[t * out + o] = s + y0[t * out + o];
    }
  compare(r, download_bf16(yb, yb.size()), ref, 1e-3, 8e-3, "bf16 out");
  compare(r, yf.download(), ref_acc, 1e-4, 1e-4, "fp32 out, accumulate");
  ctx.checks.push_back(r);
}

}  // namespace

void run_ffn_tests(Context& ctx) {
  Random rnd(ctx.seed ^ 0x5555);
  test_expert_ffn(ctx, rnd);
  test_linear(ctx, rnd);
}

void run_ffn_bench(Context& ctx) {
  Random rnd(ctx.seed ^ 0x6666);
  const int hidden = 2048, d_ff = 1408, E = 64, k = 6;
  Experts ex = make_experts(rnd, E, hidden, d_ff, false);
  for (int rows : {1, 16, 8192}) {
    DeviceBuffer<bf16> x = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * hidden, 1.f));
    std::vector<int32_t> ids;
    std::vector<float> w;
    random_routing(rnd, rows, k, E, ids, w, false);
    std::vector<char> used(E, 0);
    for (int id : ids) used[id] = 1;
    const int distinct = static_cast<int>(std::count(used.begin(), used.end(), 1));
    DeviceBuffer<int32_t> dids(ids.size());
    dids.upload(ids);
    DeviceBuffer<float> dw(w.size());
    dw.upload(w);
    DeviceBuffer<float> y(static_cast<size_t>(rows) * hidden);
    const size_t wsb = expert_ffn_workspace_bytes(rows, k, E, hidden, d_ff);
    DeviceBuffer<unsigned char> ws(wsb);
    BenchResult b{"expert_ffn_grouped", "rows=" + std::to_string(rows) + " k=6 E=64 (" + std::to_string(distinct) + " experts hit)"};
    b.bytes = distinct * 3.0 * hidden * d_ff * 2 + rows * hidden * 6.0;
    b.flops = 2.0 * rows * k * 3.0 * hidden * d_ff;
    time_it(b, ctx.stream, [&] { expert_ffn_grouped(x.get(), rows, hidden, dids.get(), dw.get(), k, E, hidden, d_ff, ex.pg.get(), ex.pu.get(), ex.pd.get(), y.get(), hidden, false, ws.get(), wsb, ctx.stream); }, 5, rows > 16 ? 20 : 50);
    ctx.benches.push_back(b);
    if (rows <= 32) {
      const size_t wsg = expert_ffn_decode_workspace_bytes(rows, k, E, hidden, d_ff);
      DeviceBuffer<unsigned char> wg(wsg);
      BenchResult bg{"expert_ffn_decode", b.shape};
      bg.bytes = b.bytes;
      bg.flops = b.flops;
      time_it(bg, ctx.stream, [&] { expert_ffn_decode(x.get(), rows, hidden, dids.get(), dw.get(), k, E, hidden, d_ff, ex.pg.get(), ex.pu.get(), ex.pd.get(), y.get(), hidden, false, wg.get(), wsg, ctx.stream); }, 5, 50);
      ctx.benches.push_back(bg);
    }
  }
  // cuBLAS reference points: a projection at decode and prefill, and lm_head at decode.
  struct Shape { const char* name; int out, in; };
  for (const Shape& s : {Shape{"linear q_proj", 3072, 2048}, Shape{"linear lm_head", 102400, 2048}}) {
    DeviceBuffer<bf16> W = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(s.out) * s.in, 0.02f));
    for (int rows : {1, 16, 8192}) {
      if (s.out > 10000 && rows > 16) continue;
      DeviceBuffer<bf16> x = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * s.in, 1.f));
      DeviceBuffer<float> y(static_cast<size_t>(rows) * s.out);
      BenchResult b{s.name, "rows=" + std::to_string(rows) + " " + std::to_string(s.out) + "x" + std::to_string(s.in)};
      b.bytes = 2.0 * s.out * s.in + rows * (2.0 * s.in + 4.0 * s.out);
      b.flops = 2.0 * rows * s.out * s.in;
      time_it(b, ctx.stream, [&] { linear_bf16_out_f32(ctx.cublas, x.get(), rows, s.in, s.in, W.get(), s.out, y.get(), s.out, false, ctx.stream); });
      ctx.benches.push_back(b);
    }
  }
}

}  // namespace moe::cuda::test
