// Checks and benchmarks of MLA attention: prefill (plain form) and decode (absorbed, compact cache).
// The decode reference deliberately uses the NON-absorbed form (k_nope = W_kb c_kv, v = W_vb c_kv
// per head and token), so the test also proves the absorption algebra.
#include <cmath>
#include <cstdio>
#include <numeric>

#include "test_util.h"

namespace moe::cuda::test {
namespace {

constexpr int NOPE = 128, ROPE = 64, VD = 128, LORA = 512, QK = 192, KVB = 256, WIDTH = 576;

// Causal attention of one head over keys [0, n) for a query (fp64).
void ref_attend(const std::vector<double>& scores_in, const std::vector<const double*>& values, int vdim,
                double* out) {
  double m = -1e300;
  for (double s : scores_in) m = std::max(m, s);
  double z = 0;
  std::vector<double> p(scores_in.size());
  for (size_t i = 0; i < p.size(); ++i) z += (p[i] = std::exp(scores_in[i] - m));
  for (int j = 0; j < vdim; ++j) out[j] = 0;
  for (size_t i = 0; i < p.size(); ++i)
    for (int j = 0; j < vdim; ++j) out[j] += p[i] / z * values[i][j];
}

void test_prefill(Context& ctx, Random& rnd) {
  CheckResult r{"mla_attention_prefill"};
  const int heads = 16;
  const float scale = mla_softmax_scale_v2_lite();
  const std::vector<int> lens = {1, 5, 64, 65, 130, 257};
  std::vector<int32_t> start = {0};
  for (int L : lens) start.push_back(start.back() + L);
  const int rows = start.back(), max_len = *std::max_element(lens.begin(), lens.end());
  HostBf16 q = rnd.bf16_tensor(static_cast<size_t>(rows) * heads * QK, 2.f);
  HostBf16 kv = rnd.bf16_tensor(static_cast<size_t>(rows) * heads * KVB, 2.f);
  const int kpe_stride = WIDTH;  // k_pe read from cache-shaped rows [c_kv | k_pe]
  HostBf16 kpe = rnd.bf16_tensor(static_cast<size_t>(rows) * kpe_stride, 2.f);
  DeviceBuffer<bf16> dq = upload_bf16(q), dkv = upload_bf16(kv), dkpe = upload_bf16(kpe);
  DeviceBuffer<int32_t> dstart(start.size());
  dstart.upload(start);
  DeviceBuffer<bf16> out(static_cast<size_t>(rows) * heads * VD);
  out.poison();
  mla_attention_prefill(dq.get(), dkv.get(), dkpe.get() + LORA, kpe_stride, dstart.get(), static_cast<int>(lens.size()),
                        max_len, heads, scale, out.get(), ctx.stream);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<float> got = download_bf16(out, out.size());
  std::vector<double> ref(got.size());
  for (size_t s = 0; s < lens.size(); ++s)
    for (int i = 0; i < lens[s]; ++i)
      for (int h = 0; h < heads; ++h) {
        const int qi = start[s] + i;
        const float* qv = &q.f[(static_cast<size_t>(qi) * heads + h) * QK];
        std::vector<double> sc;
        std::vector<std::vector<double>> vals;
        for (int j = 0; j <= i; ++j) {
          const int kj = start[s] + j;
          const float* kn = &kv.f[(static_cast<size_t>(kj) * heads + h) * KVB];
          const float* kp = &kpe.f[static_cast<size_t>(kj) * kpe_stride + LORA];
          double d = 0;
          for (int c = 0; c < NOPE; ++c) d += static_cast<double>(qv[c]) * kn[c];
          for (int c = 0; c < ROPE; ++c) d += static_cast<double>(qv[NOPE + c]) * kp[c];
          sc.push_back(d * scale);
          vals.emplace_back(kn + NOPE, kn + KVB);
        }
        std::vector<const double*> vp;
        for (auto& v : vals) vp.push_back(v.data());
        ref_attend(sc, vp, VD, &ref[(static_cast<size_t>(qi) * heads + h) * VD]);
      }
  // Output is a convex mix of bf16 values rounded once to bf16; fp32 accumulation.
  compare(r, got, ref, 2e-3, 1e-2, "out");
  ctx.checks.push_back(r);
}

struct DecodeCase {
  int heads;
  std::vector<int> lens;  // 0: an idle row (zeros expected)
};

// use_cublas: the cuBLAS-absorbed variant, with q rows inside a wider fused row (stride > heads * QK,
// as the backend's [q | c_kv | k_pe] projection output) and out rows strided too.
void run_decode_case(Context& ctx, Random& rnd, CheckResult& r, const DecodeCase& c, bool use_cublas = false) {
  const int B = static_cast<int>(c.lens.size()), heads = c.heads;
  const float scale = mla_softmax_scale_v2_lite();
  int max_ctx = 1;
  for (int L : c.lens) max_ctx = std::max(max_ctx, L);
  // Each row's cache lives at a random offset of one shared buffer (slots of different capacity).
  std::vector<int64_t> cstart(B);
  int64_t total = 0;
  for (int b = 0; b < B; ++b) {
    total += rnd.integer(0, 40);
    cstart[b] = total;
    total += c.lens[b];
  }
  total += 8;
  HostBf16 cache = rnd.bf16_tensor(static_cast<size_t>(total) * WIDTH, 1.5f);
  const int q_stride = use_cublas ? heads * QK + WIDTH : heads * QK;
  const int out_stride = use_cublas ? heads * VD + 64 : heads * VD;
  HostBf16 q = rnd.bf16_tensor(static_cast<size_t>(B) * q_stride, 1.5f);
  HostBf16 kvb = rnd.bf16_tensor(static_cast<size_t>(heads) * KVB * LORA, 1.f / std::sqrt(512.f) * 1.7f);
  DeviceBuffer<bf16> dcache = upload_bf16(cache), dq = upload_bf16(q), dkvb = upload_bf16(kvb);
  std::vector<int32_t> lens(c.lens.begin(), c.lens.end());
  DeviceBuffer<int32_t> dlen(B);
  dlen.upload(lens);
  DeviceBuffer<int64_t> dstart(B);
  dstart.upload(cstart);
  const size_t ws_bytes = use_cublas ? mla_decode_cublas_workspace_bytes(B, heads, max_ctx)
                                     : mla_decode_workspace_bytes(B, heads, max_ctx);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  ws.poison();
  DeviceBuffer<bf16> out(static_cast<size_t>(B) * out_stride);
  out.poison();
  if (use_cublas) {
    mla_attention_decode_cublas(ctx.cublas, dq.get(), q_stride, dkvb.get(), dcache.get(), WIDTH, dstart.get(), dlen.get(),
                                B, heads, max_ctx, scale, out.get(), out_stride, ws.get(), ws_bytes, ctx.stream);
  } else {
    mla_attention_decode(dq.get(), dkvb.get(), dcache.get(), WIDTH, dstart.get(), dlen.get(), B, heads, max_ctx, scale,
                         out.get(), ws.get(), ws_bytes, ctx.stream);
  }
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<float> all = download_bf16(out, out.size()), got;
  for (int b = 0; b < B; ++b)
    got.insert(got.end(), all.begin() + static_cast<size_t>(b) * out_stride,
               all.begin() + static_cast<size_t>(b) * out_stride + heads * VD);
  std::vector<double> ref(got.size(), 0.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < heads; ++h) {
      if (c.lens[b] == 0) continue;  // zeros
      const float* qv = &q.f[static_cast<size_t>(b) * q_stride + static_cast<size_t>(h) * QK];
      const float* wkb = &kvb.f[static_cast<size_t>(h) * KVB * LORA];  // rows 0..127: W_kb, 128..255: W_vb
      std::vector<double> sc;
      std::vector<std::vector<double>> vals;
      for (int t = 0; t < c.lens[b]; ++t) {
        const float* row = &cache.f[static_cast<size_t>(cstart[b] + t) * WIDTH];
        std::vector<double> kn(NOPE), v(VD);
        for (int d = 0; d < NOPE; ++d) {
          double a = 0, vv = 0;
          for (int x = 0; x < LORA; ++x) {
            a += static_cast<double>(wkb[d * LORA + x]) * row[x];
            vv += static_cast<double>(wkb[(NOPE + d) * LORA + x]) * row[x];
          }
          kn[d] = a;
          v[d] = vv;
        }
        double s = 0;
        for (int d = 0; d < NOPE; ++d) s += qv[d] * kn[d];
        for (int d = 0; d < ROPE; ++d) s += static_cast<double>(qv[NOPE + d]) * row[LORA + d];
        sc.push_back(s * scale);
        vals.push_back(v);
      }
      double* dst = &ref[(static_cast<size_t>(b) * heads + h) * VD];
      if (use_cublas) {
        // The cuBLAS variant rounds the latent output o_lat = sum_t p_t c_kv[t] to bf16 (the operand of
        // its W_vb GEMM), as transformers-bf16 rounds its attention output: model that rounding here
        // (scores still from the non-absorbed keys, so the absorption itself stays independently checked).
        std::vector<std::vector<double>> lat;
        for (int t = 0; t < c.lens[b]; ++t) {
          const float* row = &cache.f[static_cast<size_t>(cstart[b] + t) * WIDTH];
          lat.emplace_back(row, row + LORA);
        }
        std::vector<const double*> lp;
        for (auto& v : lat) lp.push_back(v.data());
        std::vector<double> o_lat(LORA);
        ref_attend(sc, lp, LORA, o_lat.data());
        for (double& v : o_lat) v = round_bf16(static_cast<float>(v));
        for (int d = 0; d < VD; ++d) {
          double acc = 0;
          for (int x = 0; x < LORA; ++x) acc += static_cast<double>(wkb[(NOPE + d) * LORA + x]) * o_lat[x];
          dst[d] = acc;
        }
        continue;
      }
      std::vector<const double*> vp;
      for (auto& v : vals) vp.push_back(v.data());
      ref_attend(sc, vp, VD, dst);
    }
  std::string what = std::string(use_cublas ? "cublas " : "") + "B=" + std::to_string(B) + " heads=" +
                     std::to_string(heads) + " max_ctx=" + std::to_string(max_ctx);
  compare(r, got, ref, 3e-3, 1.5e-2, what.c_str());
}

void test_decode(Context& ctx, Random& rnd) {
  CheckResult r{"mla_attention_decode"};
  run_decode_case(ctx, rnd, r, {16, {1, 37, 300, 0, 64, 33}});
  run_decode_case(ctx, rnd, r, {32, {300, 2, 129}});
  std::vector<int> many(16);
  for (auto& L : many) L = rnd.integer(20, 150);
  if (!ctx.quick) run_decode_case(ctx, rnd, r, {16, many});
  ctx.checks.push_back(r);
  // The variant the engine uses: absorbed projections on cuBLAS, strided q / out. The latent output
  // is rounded to bf16 once more (GEMM operand): same tolerance.
  CheckResult rc{"mla_attention_decode_cublas"};
  run_decode_case(ctx, rnd, rc, {16, {1, 37, 300, 0, 64, 33}}, true);
  run_decode_case(ctx, rnd, rc, {32, {300, 2, 129}}, true);
  run_decode_case(ctx, rnd, rc, {16, many}, true);
  ctx.checks.push_back(rc);
}

}  // namespace

void run_attention_tests(Context& ctx) {
  Random rnd(ctx.seed ^ 0x3333);
  test_prefill(ctx, rnd);
  test_decode(ctx, rnd);
}

void run_attention_bench(Context& ctx) {
  Random rnd(ctx.seed ^ 0x4444);
  const int heads = 16;
  const float scale = mla_softmax_scale_v2_lite();
  for (int seqs : {1, 16}) {
    const int len = 512, rows = seqs * len;
    DeviceBuffer<bf16> q = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * heads * QK, 1.f));
    DeviceBuffer<bf16> kv = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * heads * KVB, 1.f));
    DeviceBuffer<bf16> kpe = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(rows) * ROPE, 1.f));
    std::vector<int32_t> start(seqs + 1);
    for (int s = 0; s <= seqs; ++s) start[s] = s * len;
    DeviceBuffer<int32_t> dstart(start.size());
    dstart.upload(start);
    DeviceBuffer<bf16> out(static_cast<size_t>(rows) * heads * VD);
    BenchResult b{"mla_attention_prefill", std::to_string(seqs) + "x512 heads=16"};
    b.flops = 2.0 * (QK + VD) * heads * seqs * (static_cast<double>(len) * (len + 1) / 2);
    b.bytes = rows * heads * (QK + KVB + VD) * 2.0 + rows * ROPE * 2.0;
    time_it(b, ctx.stream, [&] { mla_attention_prefill(q.get(), kv.get(), kpe.get(), ROPE, dstart.get(), seqs, len, heads, scale, out.get(), ctx.stream); }, 3, 20);
    ctx.benches.push_back(b);
  }
  for (int B : {1, 16}) {
    const int ctx_len = 640;  // prompt 512 + 128 generated
    DeviceBuffer<bf16> cache = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(B) * ctx_len * WIDTH, 1.f));
    DeviceBuffer<bf16> q = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(B) * heads * QK, 1.f));
    DeviceBuffer<bf16> kvb = upload_bf16(rnd.bf16_tensor(static_cast<size_t>(heads) * KVB * LORA, 0.05f));
    std::vector<int32_t> lens(B, ctx_len);
    std::vector<int64_t> cs(B);
    for (int b = 0; b < B; ++b) cs[b] = static_cast<int64_t>(b) * ctx_len;
    DeviceBuffer<int32_t> dlen(B);
    dlen.upload(lens);
    DeviceBuffer<int64_t> dcs(B);
    dcs.upload(cs);
    const size_t wsb = mla_decode_workspace_bytes(B, heads, ctx_len);
    DeviceBuffer<unsigned char> ws(wsb);
    DeviceBuffer<bf16> out(static_cast<size_t>(B) * heads * VD);
    BenchResult b{"mla_attention_decode", "B=" + std::to_string(B) + " ctx=640"};
    b.bytes = B * ctx_len * WIDTH * 2.0 + heads * KVB * LORA * 2.0;
    b.flops = 2.0 * B * heads * ctx_len * (WIDTH + LORA) + 2.0 * B * heads * LORA * (NOPE + VD);
    time_it(b, ctx.stream, [&] { mla_attention_decode(q.get(), kvb.get(), cache.get(), WIDTH, dcs.get(), dlen.get(), B, heads, ctx_len, scale, out.get(), ws.get(), wsb, ctx.stream); });
    ctx.benches.push_back(b);
    const size_t wsc = mla_decode_cublas_workspace_bytes(B, heads, ctx_len);
    DeviceBuffer<unsigned char> ws2(wsc);
    BenchResult bc{"mla_attention_decode_cublas", "B=" + std::to_string(B) + " ctx=640"};
    bc.bytes = b.bytes;
    bc.flops = b.flops;
    time_it(bc, ctx.stream, [&] { mla_attention_decode_cublas(ctx.cublas, q.get(), heads * QK, kvb.get(), cache.get(), WIDTH, dcs.get(), dlen.get(), B, heads, ctx_len, scale, out.get(), heads * VD, ws2.get(), wsc, ctx.stream); });
    ctx.benches.push_back(bc);
  }
}

}  // namespace moe::cuda::test
