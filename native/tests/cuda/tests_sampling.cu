// Checks and benchmarks of device sampling: greedy arg-max, and seeded temperature / top-p draws
// (each draw replayed on the CPU in fp64 from the same counter-based random number; plus a
// frequency test of many draws against the renormalised nucleus distribution).
#include <cmath>
#include <cstdio>
#include <numeric>

#include "test_util.h"

namespace moe::cuda::test {
namespace {

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// fp64 nucleus of one row: probabilities, and tau = the smallest kept probability of the sorted
// prefix whose mass reaches top_p.
void ref_nucleus(const float* l, int V, float T, float top_p, std::vector<double>& p, double& tau) {
  double m = -1e300, z = 0;
  for (int i = 0; i < V; ++i) m = std::max<double>(m, l[i]);
  p.resize(V);
  for (int i = 0; i < V; ++i) z += (p[i] = std::exp((l[i] - m) / T));
  for (auto& v : p) v /= z;
  if (top_p >= 1.f) { tau = 0; return; }
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  double cum = 0;
  tau = p[order[0]];
  for (int i : order) {
    cum += p[i];
    tau = p[i];
    if (cum >= top_p) break;
  }
}

void test_greedy(Context& ctx, Random& rnd, CheckResult& r) {
  const int rows = 9, V = 102400;
  std::vector<float> l = rnd.f32_tensor(static_cast<size_t>(rows) * V, 8.f);
  std::vector<int> expect(rows);
  for (int t = 0; t < rows; ++t) {
    const int a = rnd.integer(0, V - 1), b = rnd.integer(0, V - 1);
    l[static_cast<size_t>(t) * V + a] = 50.f;  // an exact tie: the lower index must win
    l[static_cast<size_t>(t) * V + b] = 50.f;
    expect[t] = std::min(a, b);
  }
  DeviceBuffer<float> dl(l.size()), temp(rows), topp(rows);
  dl.upload(l);
  temp.upload(std::vector<float>(rows, 0.f));
  topp.upload(std::vector<float>(rows, 0.9f));
  DeviceBuffer<uint64_t> st(rows);
  st.upload(std::vector<uint64_t>(rows, 7));
  DeviceBuffer<int32_t> tok(rows);
  tok.poison();
  sample_tokens(dl.get(), rows, V, temp.get(), topp.get(), st.get(), tok.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<int32_t> got = tok.download();
  int bad = 0;
  for (int t = 0; t < rows; ++t)
    if (got[t] != expect[t] && bad++ < 5) std::printf("    [greedy] row %d: got %d, expected %d\n", t, got[t], expect[t]);
  require(r, bad == 0, "greedy arg-max, ties to the lower index");
}

// argmax_rows (the engine's greedy steps): the first maximum of each row, found here by a plain scan,
// with exact ties planted; and the count of non-finite logits of rows given NaN, +inf and -inf.
void test_argmax_rows(Context& ctx, Random& rnd, CheckResult& r) {
  for (const int V : {102400, 37}) {
    const int rows = 8;
    std::vector<float> l = rnd.f32_tensor(static_cast<size_t>(rows) * V, 8.f);
    std::vector<int> planted_bad(rows, 0);
    for (int t = 0; t < rows; ++t) {
      float* row = l.data() + static_cast<size_t>(t) * V;
      const int a = rnd.integer(0, V - 1), b = rnd.integer(0, V - 1);
      row[a] = row[b] = 50.f;  // an exact tie: the lower index must win
      if (t == 3) { row[rnd.integer(0, V - 1)] = NAN; planted_bad[t] = 1; }
      if (t == 5) { row[0] = INFINITY; row[V - 1] = -INFINITY; planted_bad[t] = 2; }
    }
    DeviceBuffer<float> dl(l.size());
    dl.upload(l);
    DeviceBuffer<int32_t> tok(rows), bad(rows);
    tok.poison();
    bad.poison();
    argmax_rows(dl.get(), rows, V, tok.get(), bad.get(), ctx.stream);
    CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    const std::vector<int32_t> got = tok.download(), got_bad = bad.download();
    int wrong = 0;
    for (int t = 0; t < rows; ++t) {
      const float* row = l.data() + static_cast<size_t>(t) * V;
      int first_max = 0;
      for (int i = 1; i < V; ++i)
        if (row[i] > row[first_max]) first_max = i;
      const bool token_ok = planted_bad[t] > 0 || got[t] == first_max;
      if ((!token_ok || got_bad[t] != planted_bad[t]) && wrong++ < 5)
        std::printf("    [argmax_rows V=%d] row %d: token %d (expected %d), non-finite %d (planted %d)\n", V, t, got[t], first_max,
                    got_bad[t], planted_bad[t]);
    }
    require(r, wrong == 0, "argmax_rows: first maximum and non-finite count per row, vocab " + std::to_string(V));
  }
}

// Every draw: token inside the fp64 nucleus (up to boundary tolerance) and at the position the
// same uniform number selects in fp64 (up to rounding of the running mass).
void test_draws(Context& ctx, Random& rnd, CheckResult& r) {
  const int rows = 64, V = 32000;
  std::vector<float> l = rnd.f32_tensor(static_cast<size_t>(rows) * V, 6.f);
  std::vector<float> T(rows), P(rows);
  std::vector<uint64_t> state(rows);
  for (int t = 0; t < rows; ++t) {
    T[t] = 0.3f + 1.5f * std::fabs(rnd.uniform(1.f));
    P[t] = t % 4 == 0 ? 1.f : 0.5f + 0.45f * std::fabs(rnd.uniform(1.f));
    state[t] = rnd.next();
  }
  DeviceBuffer<float> dl(l.size()), dT(rows), dP(rows);
  dl.upload(l);
  dT.upload(T);
  dP.upload(P);
  DeviceBuffer<uint64_t> ds(rows);
  ds.upload(state);
  DeviceBuffer<int32_t> tok(rows);
  tok.poison();
  sample_tokens(dl.get(), rows, V, dT.get(), dP.get(), ds.get(), tok.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<int32_t> got = tok.download();
  std::vector<uint64_t> after = ds.download();
  int outside = 0, misplaced = 0, state_bad = 0;
  for (int t = 0; t < rows; ++t) {
    std::vector<double> p;
    double tau;
    ref_nucleus(&l[static_cast<size_t>(t) * V], V, T[t], P[t], p, tau);
    const int g = got[t];
    if (after[t] != state[t] + 1) ++state_bad;
    if (g < 0 || g >= V) { ++outside; continue; }
    if (p[g] < tau * (1 - 1e-4)) {
      if (outside++ < 5) std::printf("    [top-p] row %d: token %d p=%.3g below tau %.3g\n", t, g, p[g], tau);
      continue;
    }
    double kept = 0, before = 0;
    for (int i = 0; i < V; ++i)
      if (p[i] >= tau) { kept += p[i]; if (i < g) before += p[i]; }
    const double u = static_cast<double>(splitmix64(state[t]) >> 11) / 9007199254740992.0;
    const double lo = before / kept, hi = (before + p[g]) / kept;
    if (u < lo - 1e-4 || u > hi + 1e-4) {
      if (misplaced++ < 5) std::printf("    [top-p] row %d: u=%.6f outside token %d's interval [%.6f, %.6f)\n", t, u, g, lo, hi);
    }
  }
  require(r, outside == 0, "every draw inside the nucleus");
  require(r, misplaced == 0, "every draw where its uniform number points (fp64 replay)");
  require(r, state_bad == 0, "rng_state advanced by one");
}

// 40000 draws of one small distribution: frequencies within 5 sigma of the nucleus probabilities,
// and tokens outside the nucleus never drawn.
void test_frequencies(Context& ctx, Random& rnd, CheckResult& r) {
  const int V = 40, rows = 40000;
  std::vector<float> one = rnd.f32_tensor(V, 2.f);
  std::vector<float> l;
  for (int t = 0; t < rows; ++t) l.insert(l.end(), one.begin(), one.end());
  const float T = 0.8f, P = 0.8f;
  DeviceBuffer<float> dl(l.size()), dT(rows), dP(rows);
  dl.upload(l);
  dT.upload(std::vector<float>(rows, T));
  dP.upload(std::vector<float>(rows, P));
  std::vector<uint64_t> st(rows);
  for (auto& s : st) s = rnd.next();
  DeviceBuffer<uint64_t> ds(rows);
  ds.upload(st);
  DeviceBuffer<int32_t> tok(rows);
  tok.poison();
  sample_tokens(dl.get(), rows, V, dT.get(), dP.get(), ds.get(), tok.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<int32_t> got = tok.download();
  std::vector<double> p;
  double tau;
  ref_nucleus(one.data(), V, T, P, p, tau);
  double kept = 0;
  for (double v : p) if (v >= tau) kept += v;
  std::vector<int> count(V, 0);
  int invalid = 0;
  for (int g : got) (g >= 0 && g < V) ? ++count[g] : ++invalid;
  int off = 0;
  double worst = 0;
  for (int i = 0; i < V; ++i) {
    const double q = p[i] >= tau ? p[i] / kept : 0.0;
    const double expect = q * rows, sigma = std::sqrt(std::max(1e-9, rows * q * (1 - q)));
    const double zscore = std::fabs(count[i] - expect) / sigma;
    if (q == 0.0 && count[i] > 0) ++off;
    if (q > 0.0) worst = std::max(worst, zscore);
    if (q > 0.0 && zscore > 5.0 && off++ < 5)
      std::printf("    [freq] token %d: %d draws, expected %.1f (%.1f sigma)\n", i, count[i], expect, zscore);
  }
  std::printf("    [freq] %d draws over %d tokens: worst deviation %.2f sigma\n", rows, V, worst);
  require(r, invalid == 0 && off == 0, "draw frequencies match the renormalised nucleus");
}

}  // namespace

void run_sampling_tests(Context& ctx) {
  Random rnd(ctx.seed ^ 0x7777);
  CheckResult r{"sampling"};
  test_greedy(ctx, rnd, r);
  test_argmax_rows(ctx, rnd, r);
  test_draws(ctx, rnd, r);
  test_frequencies(ctx, rnd, r);
  ctx.checks.push_back(r);
}

void run_sampling_bench(Context& ctx) {
  Random rnd(ctx.seed ^ 0x8888);
  const int V = 102400;
  for (int rows : {1, 16}) {
    DeviceBuffer<float> l(static_cast<size_t>(rows) * V);
    l.upload(rnd.f32_tensor(l.size(), 8.f));
    for (float T : {0.f, 0.7f}) {
      DeviceBuffer<float> dT(rows), dP(rows);
      dT.upload(std::vector<float>(rows, T));
      dP.upload(std::vector<float>(rows, 0.9f));
      DeviceBuffer<uint64_t> st(rows);
      st.upload(std::vector<uint64_t>(rows, 1));
      DeviceBuffer<int32_t> tok(rows);
      BenchResult b{T > 0 ? "sampling top-p 0.9 T=0.7" : "sampling greedy", "rows=" + std::to_string(rows) + " vocab=102400"};
      b.bytes = rows * V * 4.0;
      time_it(b, ctx.stream, [&] { sample_tokens(l.get(), rows, V, dT.get(), dP.get(), st.get(), tok.get(), ctx.stream); });
      ctx.benches.push_back(b);
    }
  }
}

}  // namespace moe::cuda::test
