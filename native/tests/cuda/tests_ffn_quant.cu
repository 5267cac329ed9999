// Checks and benchmarks of the quantized routed-expert kernels (moe_cuda_quant.h, issue 13).
// Blobs come from moe::quant::quantize_expert on random bf16 weights; the reference is
// moe::quant::dequantize_row (the format's meaning) followed by the expert FFN in double with h
// rounded to bf16 as the kernels keep it (as tests_ffn.cu's reference does for bf16 weights).
//   - GEMV path (expert_ffn_decode_q_entries): exact fp32 dequantization, reference on the fp32 weights.
//   - tile path (expert_ffn_grouped_q_entries): documented to run on bf16(dequantized) weights, the
//     values dequantize_expert_bf16 gives; the reference rounds the dequantized weights likewise.
//   - dequantize_expert_bf16: bit-exact against f32_to_bf16(dequantize_row(...)).
// Tolerance of the FFN checks: |got - ref| <= 2e-3 + 1e-2 |ref| (the bf16 expert tests' bound: fp32
// accumulation over 2048 / 1408 products, one-ulp flips of bf16(h) near ties). An indexing error
// (wrong nibble, group, row or scale) moves outputs by O(|ref|) and fails it everywhere.
// Masked entries (expert id -1) must stay untouched (the output is poisoned with NaN beforehand).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <thread>

#include "moe/quant/quantize.h"
#include "moe_cuda_quant.h"
#include "test_util.h"

namespace moe::cuda::test {
namespace {

using moe::quant::ExpertDType;
using moe::quant::ExpertLayout;
using moe::quant::Part;

struct QuantCase {
  ExpertDType dtype;
  int group;
  const char* name;
};

// A pool of quantized experts on the device; optionally their dequantized weights on the host
// (fp32, or rounded to bf16 for the tile path's reference) and the bf16 originals on the device.
struct QExperts {
  ExpertLayout layout;
  QuantLayout ql{};
  std::vector<std::vector<uint8_t>> blob;                  // host blobs (when kept)
  std::vector<std::vector<float>> gate, up, down;          // dequantize_row, fp32 (when kept)
  std::vector<DeviceBuffer<uint8_t>> dblob;
  DeviceBuffer<const uint8_t*> pblob;
  std::vector<DeviceBuffer<bf16>> dg, du, dd;              // bf16 originals (bench only)
  DeviceBuffer<const bf16*> pg, pu, pd;
};

QExperts make_qexperts(Random& rnd, const QuantCase& qc, int n, int hidden, int d_ff, bool keep_host, bool keep_bf16) {
  QExperts ex;
  ex.layout = moe::quant::expert_layout(qc.dtype, hidden, d_ff, qc.group);
  ex.ql = to_quant_layout(ex.layout);
  std::vector<const uint8_t*> ptrs;
  std::vector<const bf16*> g, u, d;
  const size_t gsz = static_cast<size_t>(d_ff) * hidden;
  for (int e = 0; e < n; ++e) {
    std::vector<uint16_t> bits[3];
    const float amp[3] = {1.7f / std::sqrt(static_cast<float>(hidden)), 1.7f / std::sqrt(static_cast<float>(hidden)),
                          1.7f / std::sqrt(static_cast<float>(d_ff))};
    for (int p = 0; p < 3; ++p) {
      bits[p].resize(gsz);
      for (auto& b : bits[p]) b = f2bf_bits(rnd.uniform(amp[p]));
      // A few constant and all-zero groups / rows: the quantizer's special cases (scale 0, q = 1).
      for (int c = 0; c < 64; ++c) bits[p][c] = f2bf_bits(0.f);
      for (int c = 64; c < 128; ++c) bits[p][c] = f2bf_bits(amp[p] * 0.5f);
    }
    const Matrix mg{bits[0].data(), DType::BF16, d_ff, hidden}, mu{bits[1].data(), DType::BF16, d_ff, hidden},
        md{bits[2].data(), DType::BF16, hidden, d_ff};
    std::vector<uint8_t> blob(ex.layout.bytes);
    moe::quant::quantize_expert(ex.layout, mg, mu, md, blob.data());
    ex.dblob.emplace_back(blob.size());
    ex.dblob.back().upload(blob);
    ptrs.push_back(ex.dblob.back().get());
    if (keep_bf16) {
      for (int p = 0; p < 3; ++p) {
        auto& vec = p == 0 ? ex.dg : p == 1 ? ex.du : ex.dd;
        vec.emplace_back(gsz);
        CUDA_CHECK(cudaMemcpy(vec.back().get(), bits[p].data(), gsz * 2, cudaMemcpyHostToDevice));
      }
      g.push_back(ex.dg.back().get());
      u.push_back(ex.du.back().get());
      d.push_back(ex.dd.back().get());
    }
    if (keep_host) {
      std::vector<float> fg(gsz), fu(gsz), fd(gsz);
      for (int r = 0; r < d_ff; ++r) {
        moe::quant::dequantize_row(ex.layout, blob.data(), Part::Gate, r, &fg[static_cast<size_t>(r) * hidden]);
        moe::quant::dequantize_row(ex.layout, blob.data(), Part::Up, r, &fu[static_cast<size_t>(r) * hidden]);
      }
      for (int r = 0; r < hidden; ++r)
        moe::quant::dequantize_row(ex.layout, blob.data(), Part::Down, r, &fd[static_cast<size_t>(r) * d_ff]);
      ex.gate.push_back(std::move(fg));
      ex.up.push_back(std::move(fu));
      ex.down.push_back(std::move(fd));
      ex.blob.push_back(std::move(blob));
    }
  }
  ex.pblob = DeviceBuffer<const uint8_t*>(n);
  ex.pblob.upload(ptrs);
  if (keep_bf16) {
    ex.pg = DeviceBuffer<const bf16*>(n);
    ex.pu = DeviceBuffer<const bf16*>(n);
    ex.pd = DeviceBuffer<const bf16*>(n);
    ex.pg.upload(g);
    ex.pu.upload(u);
    ex.pd.upload(d);
  }
  return ex;
}

// Distinct experts per token among `pool` ids starting at `first`; every `mask_every`-th entry
// (when > 0) masked to -1.
void routing(Random& rnd, int rows, int k, int first, int pool, int mask_every, std::vector<int32_t>& ids,
             std::vector<float>& w) {
  ids.resize(static_cast<size_t>(rows) * k);
  w.resize(ids.size());
  std::vector<int> perm(pool);
  for (int t = 0; t < rows; ++t) {
    std::iota(perm.begin(), perm.end(), first);
    std::shuffle(perm.begin(), perm.end(), rnd.gen);
    for (int j = 0; j < k; ++j) {
      const size_t i = static_cast<size_t>(t) * k + j;
      ids[i] = perm[j];
      w[i] = 0.05f + std::fabs(rnd.uniform(0.3f));
      if (mask_every > 0 && i % mask_every == 1) ids[i] = -1;
    }
  }
}

template <typename F>
void parallel_for(int n, F&& fn) {
  const int nt = std::max(1, std::min<int>(n, static_cast<int>(std::thread::hardware_concurrency())));
  std::vector<std::thread> th;
  for (int w = 0; w < nt; ++w)
    th.emplace_back([&, w] {
      for (int i = w; i < n; i += nt) fn(i);
    });
  for (auto& t : th) t.join();
}

enum class QPath { Gemv, Tile };

void check_q_case(Context& ctx, Random& rnd, CheckResult& r, const QExperts& ex, int rows, int k, int n_experts,
                  int mask_every, QPath path) {
  const int hidden = ex.layout.hidden, d_ff = ex.layout.d_ff;
  const int x_stride = hidden + 64;
  HostBf16 x = rnd.bf16_tensor(static_cast<size_t>(rows) * x_stride, 1.f);
  std::vector<int32_t> ids;
  std::vector<float> w;
  routing(rnd, rows, k, 0, n_experts, mask_every, ids, w);
  DeviceBuffer<bf16> dx = upload_bf16(x);
  DeviceBuffer<int32_t> dids(ids.size());
  dids.upload(ids);
  DeviceBuffer<float> dw(w.size());
  dw.upload(w);
  const size_t entries = ids.size();
  DeviceBuffer<float> out(entries * hidden);
  out.poison();
  const bool gemv = path == QPath::Gemv;
  const size_t wsb = gemv ? expert_ffn_decode_q_workspace_bytes(rows, k, n_experts, ex.ql)
                          : expert_ffn_grouped_q_workspace_bytes(rows, k, n_experts, ex.ql);
  DeviceBuffer<unsigned char> ws(wsb);
  ws.poison();
  (gemv ? expert_ffn_decode_q_entries : expert_ffn_grouped_q_entries)(dx.get(), rows, x_stride, dids.get(), dw.get(), k,
                                                                      n_experts, ex.pblob.get(), ex.ql, ws.get(), wsb,
                                                                      ctx.stream, out.get());
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  const std::vector<float> all = out.download();

  // Reference per computed entry, in parallel over entries (rows * k up to ~5000 x 8.6 M MACs).
  std::vector<std::vector<double>> ref(entries);
  auto wv = [&](const std::vector<float>& m, size_t i) -> double {
    return gemv ? static_cast<double>(m[i]) : static_cast<double>(round_bf16(m[i]));
  };
  parallel_for(static_cast<int>(entries), [&](int i) {
    const int e = ids[i];
    if (e < 0) return;
    const int t = i / k;
    const float* xt = &x.f[static_cast<size_t>(t) * x_stride];
    std::vector<double> h(d_ff);
    for (int f = 0; f < d_ff; ++f) {
      double g = 0, u = 0;
      const size_t base = static_cast<size_t>(f) * hidden;
      for (int c = 0; c < hidden; ++c) {
        g += wv(ex.gate[e], base + c) * xt[c];
        u += wv(ex.up[e], base + c) * xt[c];
      }
      h[f] = round_bf16(static_cast<float>(g / (1.0 + std::exp(-g)) * u));
    }
    ref[i].resize(hidden);
    for (int c = 0; c < hidden; ++c) {
      double s = 0;
      const size_t base = static_cast<size_t>(c) * d_ff;
      for (int f = 0; f < d_ff; ++f) s += wv(ex.down[e], base + f) * h[f];
      ref[i][c] = w[i] * s;
    }
  });
  std::vector<float> got;
  std::vector<double> want;
  size_t masked_written = 0, masked = 0;
  for (size_t i = 0; i < entries; ++i) {
    const float* o = &all[i * hidden];
    if (ids[i] < 0) {
      ++masked;
      for (int c = 0; c < hidden; ++c) masked_written += !std::isnan(o[c]);
      continue;
    }
    got.insert(got.end(), o, o + hidden);
    want.insert(want.end(), ref[i].begin(), ref[i].end());
  }
  const std::string what = std::string(gemv ? "gemv" : "tile") + " rows=" + std::to_string(rows) + " k=" +
                           std::to_string(k) + " E=" + std::to_string(n_experts) + " hidden=" + std::to_string(hidden) +
                           " d_ff=" + std::to_string(d_ff) + (masked ? " masked=" + std::to_string(masked) : "");
  compare(r, got, want, 2e-3, 1e-2, what.c_str());
  require(r, masked_written == 0, what + ": masked entries left untouched (" + std::to_string(masked_written) + " written)");
}

void check_dequantize(Context& ctx, CheckResult& r, const QExperts& ex, const char* name) {
  const int hidden = ex.layout.hidden, d_ff = ex.layout.d_ff;
  const size_t per = static_cast<size_t>(hidden) * d_ff;
  for (size_t e = 0; e < std::min<size_t>(2, ex.blob.size()); ++e) {
    DeviceBuffer<bf16> out(3 * per);
    out.poison();
    dequantize_expert_bf16(ex.dblob[e].get(), ex.ql, out.get(), ctx.stream);
    CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    std::vector<uint16_t> bits(3 * per);
    CUDA_CHECK(cudaMemcpy(bits.data(), out.get(), bits.size() * 2, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    int shown = 0;
    const std::vector<float>* parts[3] = {&ex.gate[e], &ex.up[e], &ex.down[e]};
    for (int p = 0; p < 3; ++p)
      for (size_t i = 0; i < per; ++i) {
        const uint16_t want = f2bf_bits((*parts[p])[i]), have = bits[p * per + i];
        if (want != have) {
          ++bad;
          if (shown++ < 8)
            std::printf("    [dequantize %s] part %d element %zu: got 0x%04x, want 0x%04x\n", name, p, i, have, want);
        }
      }
    r.checked += 3 * per;
    r.bad += bad;
    if (bad) r.pass = false;
  }
}

void test_quant_case(Context& ctx, Random& rnd, const QuantCase& qc, bool full) {
  const int hidden = 2048, d_ff = 1408, E = 16, k = 6;
  QExperts real = make_qexperts(rnd, qc, E, hidden, d_ff, true, false);
  CheckResult rd{std::string("dequantize_expert_bf16 ") + qc.name};
  rd.note = "bit-exact vs f32_to_bf16(dequantize_row)";
  check_dequantize(ctx, rd, real, qc.name);

  CheckResult rg{std::string("expert_ffn_decode_q ") + qc.name};
  rg.note = "atol 2e-3 + rtol 1e-2 vs dequantize_row fp32 weights, h bf16";
  for (int rows : {1, 2, 6, 16, 32}) {
    if (!full && rows != 1 && rows != 16) continue;
    check_q_case(ctx, rnd, rg, real, rows, k, E, rows >= 6 ? 5 : 0, QPath::Gemv);
  }
  if (full) check_q_case(ctx, rnd, rg, real, 1, k, E, 3, QPath::Gemv);  // batch 1 with 2 of 6 entries masked
  ctx.checks.push_back(rg);

  CheckResult rt{std::string("expert_ffn_grouped_q ") + qc.name};
  rt.note = "atol 2e-3 + rtol 1e-2 vs bf16(dequantize_row) weights, h bf16";
  check_q_case(ctx, rnd, rt, real, 33, k, E, 4, QPath::Tile);
  if (full) check_q_case(ctx, rnd, rt, real, 128, k, E, 7, QPath::Tile);
  // 768 rows: many 64-row tiles per expert, at a small shape (hidden 512, d_ff 384) to keep the
  // host reference short; skewed enough by E = 8, k = 2.
  if (full) {
    QExperts small = make_qexperts(rnd, qc, 8, 512, 384, true, false);
    check_q_case(ctx, rnd, rt, small, 768, 2, 8, 9, QPath::Tile);
    check_q_case(ctx, rnd, rg, small, 32, 2, 8, 3, QPath::Gemv);  // d_ff chunks not a multiple of 32 lanes
    check_dequantize(ctx, rd, small, qc.name);
  }
  ctx.checks.push_back(rd);
  ctx.checks.push_back(rt);
}

}  // namespace

void run_ffn_quant_tests(Context& ctx) {
  Random rnd(ctx.seed ^ 0x7777);
  const QuantCase cases[] = {{ExpertDType::INT8, 0, "int8"}, {ExpertDType::INT4, 64, "int4 g64"},
                             {ExpertDType::INT4, 128, "int4 g128"}};
  for (const QuantCase& qc : cases) test_quant_case(ctx, rnd, qc, !ctx.quick && qc.group != 128);
  // Refusals: a bf16 layout has no quantized form; an int4 group that splits a 16-byte chunk.
  CheckResult rr{"quant layout refusals"};
  bool threw = false;
  try {
    to_quant_layout(moe::quant::expert_layout(ExpertDType::BF16, 2048, 1408));
  } catch (const CudaError&) {
    threw = true;
  }
  require(rr, threw, "to_quant_layout(bf16) throws");
  require(rr, !expert_ffn_q_supported(to_quant_layout(moe::quant::expert_layout(ExpertDType::INT4, 2048, 1408, 16)), 64),
          "int4 group 16 unsupported");
  require(rr, expert_ffn_q_supported(to_quant_layout(moe::quant::expert_layout(ExpertDType::INT8, 2048, 1408)), 64),
          "int8 DeepSeek-V2-Lite shape supported");
  ctx.checks.push_back(rr);
}

// Kernel comparison of issue 13: bf16 vs int8 vs int4 (group 64) GEMV at DeepSeek-V2-Lite's shape,
// 6 experts at 1 row and 16 experts at 16 rows, same run. Consecutive launches rotate over disjoint
// expert sets of a 32-expert pool so the weights stream from HBM, not from the 50 MB L2.
void run_ffn_quant_bench(Context& ctx) {
  Random rnd(ctx.seed ^ 0x8888);
  const int hidden = 2048, d_ff = 1408, E = 32, k = 6;
  QExperts i8 = make_qexperts(rnd, {ExpertDType::INT8, 0, "int8"}, E, hidden, d_ff, false, true);
  QExperts i4 = make_qexperts(rnd, {ExpertDType::INT4, 64, "int4 g64"}, E, hidden, d_ff, false, false);
  struct Point { int rows, set_size, sets; };
  for (const Point pt : {Point{1, 6, 5}, Point{16, 16, 2}}) {
    std::vector<DeviceBuffer<int32_t>> dids;
    std::vector<DeviceBuffer<float>> dw;
    double distinct_sum = 0;
    for (int s = 0; s < pt.sets; ++s) {
      std::vector<int32_t> ids;
      std::vector<float> w;
      routing(rnd, pt.rows, k, s * pt.set_size, pt.set_size, 0, ids, w);
      std::vector<char> used(E, 0);
      for (int id : ids) used[id] = 1;
      distinct_sum += std::count(used.begin(), used.end(), 1);
      dids.emplace_back(ids.size());
      dids.back().upload(ids);
      dw.emplace_back(w.size());
      dw.back().upload(w);
    }
    const double distinct = distinct_sum / pt.sets;
    DeviceBuffer<bf16> x = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(pt.rows) * hidden, 1.f));
    DeviceBuffer<float> out(static_cast<size_t>(pt.rows) * k * hidden);
    char shape[96];
    std::snprintf(shape, sizeof shape, "rows=%d k=6 (%.0f experts hit)", pt.rows, distinct);
    const double act = pt.rows * hidden * 2.0 + pt.rows * k * hidden * 4.0;
    const double flops = 2.0 * pt.rows * k * 3.0 * hidden * d_ff;
    int it = 0;
    {
      const size_t wsb = expert_ffn_decode_workspace_bytes(pt.rows, k, E, hidden, d_ff);
      DeviceBuffer<unsigned char> ws(wsb);
      BenchResult b{"expert_ffn_decode bf16", shape};
      b.bytes = distinct * 3.0 * hidden * d_ff * 2 + act;
      b.flops = flops;
      time_it(b, ctx.stream, [&] {
        const int s = it++ % pt.sets;
        expert_ffn_decode_entries(x.get(), pt.rows, hidden, dids[s].get(), dw[s].get(), k, E, hidden, d_ff, i8.pg.get(),
                                  i8.pu.get(), i8.pd.get(), nullptr, hidden, false, ws.get(), wsb, ctx.stream, out.get());
      });
      ctx.benches.push_back(b);
    }
    for (const QExperts* q : {&i8, &i4}) {
      const size_t wsb = expert_ffn_decode_q_workspace_bytes(pt.rows, k, E, q->ql);
      DeviceBuffer<unsigned char> ws(wsb);
      BenchResult b{q == &i8 ? "expert_ffn_decode_q int8" : "expert_ffn_decode_q int4g64", shape};
      b.bytes = distinct * static_cast<double>(q->layout.bytes) + act;
      b.flops = flops;
      time_it(b, ctx.stream, [&] {
        const int s = it++ % pt.sets;
        expert_ffn_decode_q_entries(x.get(), pt.rows, hidden, dids[s].get(), dw[s].get(), k, E, q->pblob.get(), q->ql,
                                    ws.get(), wsb, ctx.stream, out.get());
      });
      ctx.benches.push_back(b);
    }
  }
  // The tile path at a 128-row batch (all 32 experts hit) and the per-expert dequantization.
  {
    const int rows = 128;
    std::vector<int32_t> ids;
    std::vector<float> w;
    routing(rnd, rows, k, 0, E, 0, ids, w);
    DeviceBuffer<int32_t> dids(ids.size());
    dids.upload(ids);
    DeviceBuffer<float> dw(w.size());
    dw.upload(w);
    DeviceBuffer<bf16> x = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * hidden, 1.f));
    DeviceBuffer<float> out(static_cast<size_t>(rows) * k * hidden);
    const double flops = 2.0 * rows * k * 3.0 * hidden * d_ff, act = rows * hidden * 2.0 + rows * k * hidden * 4.0;
    {
      const size_t wsb = expert_ffn_workspace_bytes(rows, k, E, hidden, d_ff);
      DeviceBuffer<unsigned char> ws(wsb);
      BenchResult b{"expert_ffn_grouped bf16", "rows=128 k=6 E=32"};
      b.bytes = E * 3.0 * hidden * d_ff * 2 + act;
      b.flops = flops;
      time_it(b, ctx.stream, [&] {
        expert_ffn_grouped_entries(x.get(), rows, hidden, dids.get(), dw.get(), k, E, hidden, d_ff, i8.pg.get(), i8.pu.get(),
                                   i8.pd.get(), nullptr, hidden, false, ws.get(), wsb, ctx.stream, out.get());
      });
      ctx.benches.push_back(b);
    }
    for (const QExperts* q : {&i8, &i4}) {
      const size_t wsb = expert_ffn_grouped_q_workspace_bytes(rows, k, E, q->ql);
      DeviceBuffer<unsigned char> ws(wsb);
      BenchResult b{q == &i8 ? "expert_ffn_grouped_q int8" : "expert_ffn_grouped_q int4g64", "rows=128 k=6 E=32"};
      b.bytes = E * static_cast<double>(q->layout.bytes) + act;
      b.flops = flops;
      time_it(b, ctx.stream, [&] {
        expert_ffn_grouped_q_entries(x.get(), rows, hidden, dids.get(), dw.get(), k, E, q->pblob.get(), q->ql, ws.get(), wsb,
                                     ctx.stream, out.get());
      });
      ctx.benches.push_back(b);
    }
    DeviceBuffer<bf16> deq(static_cast<size_t>(3) * hidden * d_ff);
    for (const QExperts* q : {&i8, &i4}) {
      BenchResult b{q == &i8 ? "dequantize_expert_bf16 int8" : "dequantize_expert_bf16 int4g64", "one expert 2048x1408"};
      b.bytes = static_cast<double>(q->layout.bytes) + 3.0 * hidden * d_ff * 2;
      int e = 0;
      std::vector<const uint8_t*> ptrs(E);
      for (int i = 0; i < E; ++i) ptrs[i] = q->dblob[i].get();
      time_it(b, ctx.stream, [&] { dequantize_expert_bf16(ptrs[e++ % E], q->ql, deq.get(), ctx.stream); });
      ctx.benches.push_back(b);
    }
  }
}

}  // namespace moe::cuda::test
