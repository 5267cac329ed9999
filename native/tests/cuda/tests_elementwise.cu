// Checks and benchmarks of the small kernels: RMSNorm, RoPE, cache append, SiLU-mul, embedding, router.
#include <cmath>
#include <cstdio>
#include <numeric>

#include "test_util.h"

namespace moe::cuda::test {

std::vector<float> yarn_inv_freq_v2_lite() {
  const int dim = 64;
  const double base = 10000, factor = 40, orig = 4096, beta_fast = 32, beta_slow = 1;
  auto corr_dim = [&](double rot) { return dim * std::log(orig / (rot * 2 * M_PI)) / (2 * std::log(base)); };
  double low = std::max(0.0, std::floor(corr_dim(beta_fast)));
  double high = std::min<double>(dim - 1, std::ceil(corr_dim(beta_slow)));
  if (low == high) high += 0.001;
  std::vector<float> inv(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    const float pos_freq = static_cast<float>(std::pow(base, (2.0 * i) / dim));
    const float extra = 1.f / pos_freq, inter = 1.f / (static_cast<float>(factor) * pos_freq);
    const float ramp = std::min(1.f, std::max(0.f, static_cast<float>((i - low) / (high - low))));
    const float extra_factor = 1.f - ramp;
    inv[i] = inter * (1.f - extra_factor) + extra * extra_factor;
  }
  return inv;
}

float mla_softmax_scale_v2_lite() {
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  return static_cast<float>(std::pow(192.0, -0.5) * m * m);
}

namespace {

// fp64 RMSNorm of one row.
void ref_rmsnorm(const float* x, const float* w, double eps, int n, double* out) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(ss / n + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

// Rotation of interleaved pair (a, b) at pos with the fp32 angle transformers forms.
void ref_rope_pair(double& a, double& b, int pos, float inv_freq, double attention_factor) {
  const float angle = static_cast<float>(pos) * inv_freq;
  const double c = std::cos(static_cast<double>(angle)) * attention_factor;
  const double s = std::sin(static_cast<double>(angle)) * attention_factor;
  const double ra = a * c - b * s, rb = b * c + a * s;
  a = ra;
  b = rb;
}

void test_rmsnorm(Context& ctx, Random& rnd) {
  CheckResult r{"rmsnorm"};
  const float eps = 1e-6f;
  for (int variant = 0; variant < 2; ++variant) {
    const int rows = 37, n = 2048, x_stride = variant ? 2048 + 64 : 2048, out_stride = variant ? 2048 + 16 : 2048;
    const float amp = variant ? 30.f : 1.f;  // large activations (the residual stream grows)
    std::vector<float> w = rnd.f32_tensor(n, 1.5f);
    DeviceBuffer<float> dw(n);
    dw.upload(w);
    DeviceBuffer<bf16> out(static_cast<size_t>(rows) * out_stride);
    std::vector<double> ref(static_cast<size_t>(rows) * n);
    std::vector<float> got(ref.size());
    if (variant == 0) {  // fp32 in
      std::vector<float> x = rnd.f32_tensor(static_cast<size_t>(rows) * x_stride, amp);
      DeviceBuffer<float> dx(x.size());
      dx.upload(x);
      out.poison();
      rmsnorm_f32_to_bf16(dx.get(), x_stride, dw.get(), eps, rows, n, out.get(), out_stride, ctx.stream);
      for (int t = 0; t < rows; ++t) ref_rmsnorm(&x[t * x_stride], w.data(), eps, n, &ref[t * n]);
    } else {  // bf16 in (kv_a's c_kv)
      HostBf16 x = rnd.bf16_tensor(static_cast<size_t>(rows) * x_stride, amp);
      DeviceBuffer<bf16> dx = upload_bf16(x);
      out.poison();
      rmsnorm_bf16_to_bf16(dx.get(), x_stride, dw.get(), eps, rows, n, out.get(), out_stride, ctx.stream);
      for (int t = 0; t < rows; ++t) ref_rmsnorm(&x.f[t * x_stride], w.data(), eps, n, &ref[t * n]);
    }
    CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    std::vector<float> all = download_bf16(out, out.size());
    for (int t = 0; t < rows; ++t)
      for (int i = 0; i < n; ++i) got[t * n + i] = all[static_cast<size_t>(t) * out_stride + i];
    // bf16 output: one rounding (2^-8 relative) plus fp32 sum order.
    compare(r, got, ref, 1e-3, 8e-3, variant ? "bf16->bf16, strided" : "f32->bf16");
  }
  ctx.checks.push_back(r);
}

void test_rope(Context& ctx, Random& rnd) {
  CheckResult r{"rope_yarn"};
  const std::vector<float> inv = yarn_inv_freq_v2_lite();
  DeviceBuffer<float> dinv(inv.size());
  dinv.upload(inv);
  const int rows = 29, heads = 16, hs = 192, off = 128, rope = 64;
  HostBf16 q = rnd.bf16_tensor(static_cast<size_t>(rows) * heads * hs, 2.f);
  std::vector<int32_t> pos(rows);
  for (int t = 0; t < rows; ++t) pos[t] = t < 8 ? t : rnd.integer(0, 163839);  // small and very large
  DeviceBuffer<int32_t> dpos(rows);
  dpos.upload(pos);
  DeviceBuffer<bf16> dq = upload_bf16(q);
  const float af = 1.0f;
  rope_yarn_inplace(dq.get(), rows, heads * hs, heads, hs, off, rope, dpos.get(), dinv.get(), af, ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<float> got = download_bf16(dq, q.size());
  std::vector<double> ref(q.size());
  for (size_t i = 0; i < q.size(); ++i) ref[i] = q.f[i];
  for (int t = 0; t < rows; ++t)
    for (int h = 0; h < heads; ++h) {
      double* v = &ref[(static_cast<size_t>(t) * heads + h) * hs + off];
      for (int i = 0; i < rope / 2; ++i) ref_rope_pair(v[2 * i], v[2 * i + 1], pos[t], inv[i], af);
    }
  // The nope part must come back bit-identical (rtol 0); the rope part within one bf16 rounding.
  compare(r, got, ref, 2e-3, 8e-3, "q heads (nope untouched, rope rotated)");
  int changed_nope = 0;
  for (int t = 0; t < rows; ++t)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < off; ++d) {
        const size_t i = (static_cast<size_t>(t) * heads + h) * hs + d;
        changed_nope += got[i] != q.f[i];
      }
  require(r, changed_nope == 0, "q_nope left bit-identical");
  ctx.checks.push_back(r);
}

void test_cache_append(Context& ctx, Random& rnd) {
  CheckResult r{"mla_cache_append"};
  const std::vector<float> inv = yarn_inv_freq_v2_lite();
  DeviceBuffer<float> dinv(inv.size());
  dinv.upload(inv);
  const int rows = 19, lora = 512, rope = 64, width = 576, stride = 576, cache_rows = 200;
  HostBf16 kva = rnd.bf16_tensor(static_cast<size_t>(rows) * stride, 3.f);
  std::vector<float> w = rnd.f32_tensor(lora, 1.2f);
  std::vector<int32_t> pos(rows);
  std::vector<int64_t> dest(rows);
  std::vector<int> perm(cache_rows);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rnd.gen);
  for (int t = 0; t < rows; ++t) {
    pos[t] = rnd.integer(0, 100000);
    dest[t] = perm[t];
  }
  DeviceBuffer<bf16> dkva = upload_bf16(kva);
  DeviceBuffer<float> dw(lora);
  dw.upload(w);
  DeviceBuffer<int32_t> dpos(rows);
  dpos.upload(pos);
  DeviceBuffer<int64_t> ddest(rows);
  ddest.upload(dest);
  DeviceBuffer<bf16> cache(static_cast<size_t>(cache_rows) * width);
  cache.poison();
  mla_cache_append(dkva.get(), rows, stride, dw.get(), 1e-6f, lora, rope, dpos.get(), dinv.get(), 1.f, ddest.get(),
                   cache.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<float> all = download_bf16(cache, cache.size());
  std::vector<float> got;
  std::vector<double> ref;
  for (int t = 0; t < rows; ++t) {
    std::vector<double> row(width);
    ref_rmsnorm(&kva.f[t * stride], w.data(), 1e-6, lora, row.data());
    for (int i = 0; i < rope; ++i) row[lora + i] = kva.f[t * stride + lora + i];
    for (int i = 0; i < rope / 2; ++i) ref_rope_pair(row[lora + 2 * i], row[lora + 2 * i + 1], pos[t], inv[i], 1.0);
    for (int i = 0; i < width; ++i) {
      got.push_back(all[dest[t] * width + i]);
      ref.push_back(row[i]);
    }
  }
  compare(r, got, ref, 2e-3, 8e-3, "cache rows");
  // Rows nobody wrote keep the poison: the kernel writes only its destinations.
  size_t untouched_nan = 0, untouched = 0;
  for (int c = rows; c < cache_rows; ++c)
    for (int i = 0; i < width; ++i, ++untouched) untouched_nan += std::isnan(all[perm[c] * width + i]);
  require(r, untouched_nan == untouched, "other cache rows untouched");
  ctx.checks.push_back(r);
}

void test_silu_mul(Context& ctx, Random& rnd) {
  CheckResult r{"silu_mul"};
  const int rows = 23, d_ff = 2816, gu_stride = 2 * d_ff + 64, out_stride = d_ff + 8;
  HostBf16 gu = rnd.bf16_tensor(static_cast<size_t>(rows) * gu_stride, 6.f);
  DeviceBuffer<bf16> dgu = upload_bf16(gu);
  DeviceBuffer<bf16> out(static_cast<size_t>(rows) * out_stride);
  out.poison();
  silu_mul(dgu.get(), rows, d_ff, gu_stride, out.get(), out_stride, ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<float> all = download_bf16(out, out.size()), got;
  std::vector<double> ref;
  for (int t = 0; t < rows; ++t)
    for (int i = 0; i < d_ff; ++i) {
      const double g = gu.f[t * gu_stride + i], u = gu.f[t * gu_stride + d_ff + i];
      ref.push_back(g / (1.0 + std::exp(-g)) * u);
      got.push_back(all[static_cast<size_t>(t) * out_stride + i]);
    }
  compare(r, got, ref, 1e-3, 8e-3, "h");
  ctx.checks.push_back(r);
}

void test_embedding(Context& ctx, Random& rnd) {
  CheckResult r{"embedding"};
  const int vocab = 3001, hidden = 2048, rows = 33;
  HostBf16 table = rnd.bf16_tensor(static_cast<size_t>(vocab) * hidden, 0.5f);
  DeviceBuffer<bf16> dt = upload_bf16(table);
  std::vector<int32_t> ids(rows);
  for (auto& id : ids) id = rnd.integer(0, vocab - 1);
  ids[0] = 0;
  ids[1] = vocab - 1;
  DeviceBuffer<int32_t> dids(rows), flag(1);
  dids.upload(ids);
  DeviceBuffer<float> out(static_cast<size_t>(rows) * hidden);
  out.poison();
  CUDA_CHECK(cudaMemset(flag.get(), 0, 4));
  embedding(dt.get(), vocab, hidden, dids.get(), rows, out.get(), hidden, flag.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<float> got = out.download();
  std::vector<double> ref(got.size());
  for (int t = 0; t < rows; ++t)
    for (int i = 0; i < hidden; ++i) ref[t * hidden + i] = table.f[static_cast<size_t>(ids[t]) * hidden + i];
  compare(r, got, ref, 0, 0, "rows (exact)");
  require(r, flag.download()[0] == 0, "no bad-id flag for valid ids");
  // An id out of range: zero row and the flag set.
  ids[5] = vocab;
  ids[6] = -3;
  dids.upload(ids);
  out.poison();
  embedding(dt.get(), vocab, hidden, dids.get(), rows, out.get(), hidden, flag.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  got = out.download();
  bool zero = true;
  for (int i = 0; i < hidden; ++i) zero = zero && got[5 * hidden + i] == 0.f && got[6 * hidden + i] == 0.f;
  require(r, zero, "out-of-range id gives a zero row");
  require(r, flag.download()[0] == 1, "out-of-range id sets the flag");
  ctx.checks.push_back(r);
}

void test_router(Context& ctx, Random& rnd) {
  CheckResult r{"router_topk"};
  struct Case { int n_experts, k; bool norm; float scale; };
  const Case cases[] = {{64, 6, false, 1.f}, {64, 6, true, 1.f}, {160, 6, false, 16.f}, {256, 8, true, 2.5f}, {8, 1, true, 1.f}};
  for (const Case& c : cases) {
    const int rows = 301;
    std::vector<float> logits = rnd.f32_tensor(static_cast<size_t>(rows) * c.n_experts, 4.f);
    for (int t = 0; t < rows; t += 3) {  // exact ties, to check "ties to the lower id"
      const int a = rnd.integer(0, c.n_experts - 1), b = rnd.integer(0, c.n_experts - 1);
      logits[t * c.n_experts + a] = logits[t * c.n_experts + b] = 9.f;
    }
    DeviceBuffer<float> dl(logits.size());
    dl.upload(logits);
    DeviceBuffer<int32_t> de(static_cast<size_t>(rows) * c.k);
    DeviceBuffer<float> dw(static_cast<size_t>(rows) * c.k);
    de.poison();
    dw.poison();
    router_topk(dl.get(), rows, c.n_experts, c.k, c.norm, c.scale, de.get(), dw.get(), ctx.stream);
    CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    std::vector<int32_t> ge = de.download();
    std::vector<float> gw = dw.download();
    std::vector<double> ref_w;
    std::vector<float> got_w;
    size_t id_mismatch = 0;
    for (int t = 0; t < rows; ++t) {
      const float* l = &logits[static_cast<size_t>(t) * c.n_experts];
      double m = -1e300, z = 0;
      for (int e = 0; e < c.n_experts; ++e) m = std::max<double>(m, l[e]);
      std::vector<double> p(c.n_experts);
      for (int e = 0; e < c.n_experts; ++e) z += (p[e] = std::exp(l[e] - m));
      for (auto& v : p) v /= z;
      std::vector<int> order(c.n_experts);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
      double sum = 0;
      for (int j = 0; j < c.k; ++j) sum += p[order[j]];
      for (int j = 0; j < c.k; ++j) {
        const int ge_j = ge[t * c.k + j];
        // An id differing from the fp64 order is accepted only for a near-tie (fp32 vs fp64 scores).
        if (ge_j != order[j]) {
          const bool near_tie = ge_j >= 0 && ge_j < c.n_experts && std::fabs(p[ge_j] - p[order[j]]) <= 1e-6 * p[order[j]];
          if (!near_tie && id_mismatch++ < 8)
            std::printf("    [E=%d k=%d] row %d pick %d: got expert %d, ref %d\n", c.n_experts, c.k, t, j, ge_j, order[j]);
        }
        const double w = (c.norm && c.k > 1) ? p[order[j]] / (sum + 1e-20) : p[order[j]] * c.scale;
        ref_w.push_back(w);
        got_w.push_back(gw[t * c.k + j]);
      }
    }
    require(r, id_mismatch == 0, "expert ids (greedy, descending, ties to lower id) E=" + std::to_string(c.n_experts));
    compare(r, got_w, ref_w, 1e-6, 2e-5, "weights");
  }
  ctx.checks.push_back(r);
}

}  // namespace

void run_elementwise_tests(Context& ctx) {
  Random rnd(ctx.seed ^ 0x1111);
  test_rmsnorm(ctx, rnd);
  test_rope(ctx, rnd);
  test_cache_append(ctx, rnd);
  test_silu_mul(ctx, rnd);
  test_embedding(ctx, rnd);
  test_router(ctx, rnd);
}

void run_elementwise_bench(Context& ctx) {
  Random rnd(ctx.seed ^ 0x2222);
  const int hidden = 2048;
  const std::vector<float> inv = yarn_inv_freq_v2_lite();
  DeviceBuffer<float> dinv(inv.size());
  dinv.upload(inv);
  for (int rows : {1, 16, 8192}) {
    const std::string shape = "rows=" + std::to_string(rows);
    {
      DeviceBuffer<float> x(static_cast<size_t>(rows) * hidden), w(hidden);
      x.upload(rnd.f32_tensor(x.size(), 2.f));
      w.upload(rnd.f32_tensor(hidden, 1.f));
      DeviceBuffer<bf16> out(static_cast<size_t>(rows) * hidden);
      BenchResult b{"rmsnorm f32->bf16", shape + " n=2048"};
      b.bytes = rows * hidden * 6.0 + hidden * 4.0;
      time_it(b, ctx.stream, [&] { rmsnorm_f32_to_bf16(x.get(), hidden, w.get(), 1e-6f, rows, hidden, out.get(), hidden, ctx.stream); });
      ctx.benches.push_back(b);
    }
    {
      DeviceBuffer<bf16> q = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * 16 * 192, 1.f));
      std::vector<int32_t> pos(rows);
      for (int t = 0; t < rows; ++t) pos[t] = t;
      DeviceBuffer<int32_t> dpos(rows);
      dpos.upload(pos);
      BenchResult b{"rope_yarn q_pe", shape + " heads=16"};
      b.bytes = rows * 16 * 64 * 4.0;
      time_it(b, ctx.stream, [&] { rope_yarn_inplace(q.get(), rows, 16 * 192, 16, 192, 128, 64, dpos.get(), dinv.get(), 1.f, ctx.stream); });
      ctx.benches.push_back(b);
    }
    {
      DeviceBuffer<bf16> kva = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * 576, 1.f));
      DeviceBuffer<bf16> cache(static_cast<size_t>(rows) * 576);
      DeviceBuffer<float> w(512);
      w.upload(rnd.f32_tensor(512, 1.f));
      std::vector<int32_t> pos(rows);
      std::vector<int64_t> dest(rows);
      for (int t = 0; t < rows; ++t) pos[t] = dest[t] = t;
      DeviceBuffer<int32_t> dpos(rows);
      dpos.upload(pos);
      DeviceBuffer<int64_t> ddest(rows);
      ddest.upload(dest);
      BenchResult b{"mla_cache_append", shape};
      b.bytes = rows * 576 * 4.0;
      time_it(b, ctx.stream, [&] { mla_cache_append(kva.get(), rows, 576, w.get(), 1e-6f, 512, 64, dpos.get(), dinv.get(), 1.f, ddest.get(), cache.get(), ctx.stream); });
      ctx.benches.push_back(b);
    }
    {
      const int d_ff = 2816;
      DeviceBuffer<bf16> gu = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * 2 * d_ff, 2.f));
      DeviceBuffer<bf16> out(static_cast<size_t>(rows) * d_ff);
      BenchResult b{"silu_mul", shape + " d_ff=2816"};
      b.bytes = rows * d_ff * 6.0;
      time_it(b, ctx.stream, [&] { silu_mul(gu.get(), rows, d_ff, 2 * d_ff, out.get(), d_ff, ctx.stream); });
      ctx.benches.push_back(b);
    }
    {
      DeviceBuffer<float> l(static_cast<size_t>(rows) * 64);
      l.upload(rnd.f32_tensor(l.size(), 3.f));
      DeviceBuffer<int32_t> e(static_cast<size_t>(rows) * 6);
      DeviceBuffer<float> w(static_cast<size_t>(rows) * 6);
      BenchResult b{"router_topk", shape + " E=64 k=6"};
      b.bytes = rows * (64 * 4.0 + 6 * 8.0);
      time_it(b, ctx.stream, [&] { router_topk(l.get(), rows, 64, 6, false, 1.f, e.get(), w.get(), ctx.stream); });
      ctx.benches.push_back(b);
    }
  }
  {
    const int vocab = 102400;
    DeviceBuffer<bf16> table = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(vocab) * hidden, 0.1f));
    for (int rows : {1, 16, 8192}) {
      std::vector<int32_t> ids(rows);
      for (auto& id : ids) id = rnd.integer(0, vocab - 1);
      DeviceBuffer<int32_t> dids(rows);
      dids.upload(ids);
      DeviceBuffer<float> out(static_cast<size_t>(rows) * hidden);
      BenchResult b{"embedding", "rows=" + std::to_string(rows) + " vocab=102400"};
      b.bytes = rows * hidden * 6.0;
      time_it(b, ctx.stream, [&] { embedding(table.get(), vocab, hidden, dids.get(), rows, out.get(), hidden, nullptr, ctx.stream); });
      ctx.benches.push_back(b);
    }
  }
}

}  // namespace moe::cuda::test
