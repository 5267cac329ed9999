// Kernel tests: each CPU kernel against a straightforward double-precision reference, over every
// instruction set this CPU can run (the others are reported as skipped, by name).
// Run: native/build/.../moe_kernel_tests  (exit status 0 = all passed)
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "check.h"
#include "moe/cpu_features.h"
#include "moe/error.h"
#include "moe/kernels.h"
#include "moe/moe_plan.h"
#include "moe/weights.h"

using namespace moe;
using namespace moe_test;

namespace {

struct Bf16Matrix {
  std::vector<uint16_t> data;
  Matrix view;
  Bf16Matrix(int rows, int cols, Lcg& rng, float scale = 1.f) : data(static_cast<size_t>(rows) * cols) {
    for (uint16_t& v : data) v = f32_to_bf16(rng.next() * scale);
    view = Matrix{data.data(), DType::BF16, rows, cols};
  }
};

std::vector<float> random_vec(size_t n, Lcg& rng, float scale = 1.f) {
  std::vector<float> v(n);
  for (float& x : v) x = rng.next() * scale;
  return v;
}

std::vector<double> ref_linear(const std::vector<float>& x, int T, const Matrix& W, bool round_x_bf16 = false) {
  std::vector<double> y(static_cast<size_t>(T) * W.rows);
  for (int t = 0; t < T; ++t) {
    for (int o = 0; o < W.rows; ++o) {
      double s = 0;
      for (int k = 0; k < W.cols; ++k) {
        float xv = x[static_cast<size_t>(t) * W.cols + k];
        if (round_x_bf16) xv = bf16_to_f32(f32_to_bf16(xv));
        s += static_cast<double>(xv) * matrix_at(W, o, k);
      }
      y[static_cast<size_t>(t) * W.rows + o] = s;
    }
  }
  return y;
}

std::vector<LinearIsa> runnable_isas(bool include_bf16) {
  std::vector<LinearIsa> out;
  std::vector<LinearIsa> all = {LinearIsa::Scalar, LinearIsa::Avx2, LinearIsa::Avx512};
  if (include_bf16) all.push_back(LinearIsa::Avx512Bf16);
  for (LinearIsa isa : all) {
    if (isa_supported(isa)) out.push_back(isa);
    else std::printf("  (skipped on this CPU: %s)\n", linear_isa_name(isa));
  }
  return out;
}

void test_linear() {
  std::printf("linear\n");
  ThreadPool pool(3);
  Lcg rng(1);
  for (LinearIsa isa : runnable_isas(true)) {
    const bool bf16x = isa == LinearIsa::Avx512Bf16;
    for (int K : {1, 7, 16, 33, 100, 130, 2048}) {
      for (int T : {1, 3, 4, 5, 17}) {
        const int O = 37;
        Bf16Matrix W(O, K, rng);
        std::vector<float> x = random_vec(static_cast<size_t>(T) * K, rng);
        std::vector<float> y(static_cast<size_t>(T) * O, NAN);
        linear(x.data(), T, W.view, y.data(), &pool, isa);
        std::vector<double> ref = ref_linear(x, T, W.view, bf16x);
        // fp32 accumulation of K terms of size <= 1: error grows like K * eps.
        const double atol = 1e-6 * std::sqrt(static_cast<double>(K)) * 4;
        close_all(std::string("linear ") + linear_isa_name(isa) + " K=" + std::to_string(K) + " T=" + std::to_string(T), y.data(),
                  ref.data(), ref.size(), atol, 1e-5);
      }
    }
  }
  // f16 and f32 weights take the generic path.
  for (DType dt : {DType::F16, DType::F32}) {
    const int O = 9, K = 21, T = 3;
    std::vector<uint16_t> h(static_cast<size_t>(O) * K);
    std::vector<float> f(static_cast<size_t>(O) * K);
    for (size_t i = 0; i < f.size(); ++i) {
      f[i] = rng.next();
      h[i] = 0x3c00;  // 1.0 in f16
    }
    h[5] = 0xc000;  // -2.0
    Matrix W = dt == DType::F16 ? Matrix{h.data(), DType::F16, O, K} : Matrix{f.data(), DType::F32, O, K};
    std::vector<float> x = random_vec(static_cast<size_t>(T) * K, rng);
    std::vector<float> y(static_cast<size_t>(T) * O);
    linear(x.data(), T, W, y.data(), &pool);
    std::vector<double> ref = ref_linear(x, T, W);
    close_all(std::string("linear generic ") + dtype_name(dt), y.data(), ref.data(), ref.size(), 1e-5, 1e-5);
  }
  expect(f16_to_f32(0x3c00) == 1.0f && f16_to_f32(0xc000) == -2.0f && f16_to_f32(0x0001) == std::ldexp(1.0f, -24),
         "f16_to_f32 decodes 1, -2 and the smallest subnormal");
}

void test_mlp() {
  std::printf("mlp_forward (routed-expert kernel)\n");
  Lcg rng(2);
  ThreadPool pool(4);
  const int H = 64, F = 45;
  MlpWeights w;
  Bf16Matrix g(F, H, rng, 0.3f), u(F, H, rng, 0.3f), d(H, F, rng, 0.3f);
  w.gate = g.view;
  w.up = u.view;
  w.down = d.view;
  for (LinearIsa isa : runnable_isas(true)) {
    const bool bf16x = isa == LinearIsa::Avx512Bf16;
    for (int T : {1, 4, 6, 16}) {
      std::vector<float> x = random_vec(static_cast<size_t>(T) * H, rng);
      std::vector<double> ref(static_cast<size_t>(T) * H, 0.0);
      for (int t = 0; t < T; ++t) {
        std::vector<double> hmid(F);
        for (int f = 0; f < F; ++f) {
          double a = 0, b = 0;
          for (int k = 0; k < H; ++k) {
            float xv = x[static_cast<size_t>(t) * H + k];
            if (bf16x) xv = bf16_to_f32(f32_to_bf16(xv));
            a += xv * static_cast<double>(matrix_at(w.gate, f, k));
            b += xv * static_cast<double>(matrix_at(w.up, f, k));
          }
          hmid[f] = a / (1.0 + std::exp(-a)) * b;
          if (bf16x) hmid[f] = bf16_to_f32(f32_to_bf16(static_cast<float>(hmid[f])));
        }
        for (int o = 0; o < H; ++o) {
          double s = 0;
          for (int f = 0; f < F; ++f) s += hmid[f] * matrix_at(w.down, o, f);
          ref[static_cast<size_t>(t) * H + o] = s;
        }
      }
      FfnScratch scratch;
      std::vector<float> y(static_cast<size_t>(T) * H, 0.5f);
      mlp_forward(x.data(), T, w, y.data(), false, 1.0f, &pool, scratch, isa);
      // bf16 activations: the reference rounds the same values, but an fp32 value near a rounding
      // boundary may round the other way, hence the looser tolerance.
      const double rtol = bf16x ? 2e-2 : 1e-5, atol = bf16x ? 2e-3 : 1e-6;
      close_all(std::string("mlp ") + linear_isa_name(isa) + " T=" + std::to_string(T), y.data(), ref.data(), ref.size(), atol, rtol);
      // accumulate: out += 0.25 * mlp(x)
      std::vector<float> acc(static_cast<size_t>(T) * H, 1.0f);
      mlp_forward(x.data(), T, w, acc.data(), true, 0.25f, &pool, scratch, isa);
      std::vector<double> ref_acc(ref.size());
      for (size_t i = 0; i < ref.size(); ++i) ref_acc[i] = 1.0 + 0.25 * ref[i];
      close_all(std::string("mlp accumulate ") + linear_isa_name(isa), acc.data(), ref_acc.data(), ref_acc.size(), atol, rtol);
    }
  }
}

void test_rmsnorm_silu() {
  std::printf("rmsnorm, silu_mul\n");
  Lcg rng(3);
  const int T = 3, n = 50;
  std::vector<float> x = random_vec(static_cast<size_t>(T) * n, rng, 3.f), w = random_vec(n, rng);
  std::vector<float> y(x.size());
  rmsnorm(x.data(), T, n, n, w.data(), 1e-6f, y.data(), n);
  std::vector<double> ref(x.size());
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(x[t * n + i]) * x[t * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
    for (int i = 0; i < n; ++i) ref[t * n + i] = w[i] * x[t * n + i] * inv;
  }
  close_all("rmsnorm", y.data(), ref.data(), ref.size(), 1e-6, 1e-5);
  std::vector<float> g = random_vec(100, rng, 6.f), u = random_vec(100, rng);
  std::vector<double> sref(100);
  for (int i = 0; i < 100; ++i) sref[i] = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
  silu_mul(g.data(), u.data(), 100);
  close_all("silu_mul", g.data(), sref.data(), 100, 1e-6, 1e-5);
}

ModelConfig lite_like_config() {
  ModelConfig c;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.max_position_embeddings = 163840;
  c.rope.type = "yarn";
  c.rope.theta = 10000;
  c.rope.factor = 40;
  c.rope.original_max_position_embeddings = 4096;
  c.rope.beta_fast = 32;
  c.rope.beta_slow = 1;
  c.rope.mscale = 0.707;
  c.rope.mscale_all_dim = 0.707;
  return c;
}

void test_rope() {
  std::printf("rope (YaRN)\n");
  ModelConfig c = lite_like_config();
  // DeepSeek-V2-Lite: m = 0.1 * 0.707 * ln 40 + 1 = 1.26081; scale = 192^-0.5 * m^2 = 0.114721.
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  const double want_scale = std::pow(192.0, -0.5) * m * m;
  expect(std::fabs(attention_softmax_scale(c) - want_scale) < 1e-7, "softmax scale of the Lite config is 192^-0.5 * m^2");
  expect(std::fabs(want_scale - 0.114721) < 1e-5, "softmax scale of the Lite config is about 0.1147");
  RopeTable t = make_rope_table(c);
  expect(t.attention_factor == 1.0f, "mscale == mscale_all_dim gives cos/sin factor 1");
  // Independent reference of the blend: low = floor(corr(32)), high = ceil(corr(1)).
  auto corr = [](double rot) { return 64 * std::log(4096 / (rot * 2 * M_PI)) / (2 * std::log(10000.0)); };
  const double low = std::max(0.0, std::floor(corr(32))), high = std::min(63.0, std::ceil(corr(1)));
  expect(low == 10 && high == 23, "YaRN correction range of the Lite config is [10, 23]");
  std::vector<double> ref(32);
  for (int i = 0; i < 32; ++i) {
    const double extra = std::pow(10000.0, -2.0 * i / 64), inter = extra / 40;
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    ref[i] = inter * ramp + extra * (1 - ramp);
  }
  close_all("yarn inv_freq", t.inv_freq.data(), ref.data(), 32, 0, 1e-6);
  // Without mscale keys transformers falls back to get_mscale(factor) for cos/sin.
  ModelConfig c2 = c;
  c2.rope.mscale = 0;
  c2.rope.mscale_all_dim = 0;
  expect(std::fabs(make_rope_table(c2).attention_factor - (0.1 * std::log(40.0) + 1)) < 1e-6,
         "yarn without mscale keys scales cos/sin by 0.1 ln(factor) + 1");
  expect(std::fabs(attention_softmax_scale(c2) - std::pow(192.0, -0.5)) < 1e-8, "yarn without mscale_all_dim keeps 192^-0.5");
  // Rotation of interleaved pairs = complex multiplication by e^{i pos inv_freq}.
  Lcg rng(4);
  std::vector<float> v = random_vec(64, rng), orig = v;
  const int pos = 37;
  rope_interleaved(v.data(), pos, t);
  std::vector<double> rref(64);
  for (int i = 0; i < 32; ++i) {
    const double ang = static_cast<double>(static_cast<float>(pos) * t.inv_freq[i]);
    rref[2 * i] = orig[2 * i] * std::cos(ang) - orig[2 * i + 1] * std::sin(ang);
    rref[2 * i + 1] = orig[2 * i] * std::sin(ang) + orig[2 * i + 1] * std::cos(ang);
  }
  close_all("rope_interleaved", v.data(), rref.data(), 64, 1e-6, 1e-5);
  ModelConfig c3;
  c3.qk_nope_head_dim = 8;
  c3.qk_rope_head_dim = 8;
  c3.rope.theta = 100;
  RopeTable d = make_rope_table(c3);
  std::vector<double> dref = {1.0, std::pow(100.0, -0.25), std::pow(100.0, -0.5), std::pow(100.0, -0.75)};
  close_all("default rope inv_freq", d.inv_freq.data(), dref.data(), 4, 0, 1e-6);
}

void test_mla() {
  std::printf("mla_attend_head (absorbed) vs expanded attention\n");
  Lcg rng(5);
  MlaDims d;
  d.heads = 3;
  d.nope = 6;
  d.rope = 4;
  d.v = 5;
  d.kv_lora = 12;
  d.scale = 0.3f;
  const int ctx = 9, width = d.kv_lora + d.rope;
  std::vector<float> cache = random_vec(static_cast<size_t>(ctx) * width, rng);
  std::vector<float> kv_b = random_vec(static_cast<size_t>(d.heads) * (d.nope + d.v) * d.kv_lora, rng);
  std::vector<float> q = random_vec(static_cast<size_t>(d.heads) * (d.nope + d.rope), rng, 2.f);
  std::vector<float> out(static_cast<size_t>(d.heads) * d.v), scratch(2 * d.kv_lora + ctx);
  std::vector<double> ref(out.size());
  for (int h = 0; h < d.heads; ++h) {
    mla_attend_head(q.data() + h * (d.nope + d.rope), cache.data(), width, ctx, kv_b.data(), d, h, out.data() + h * d.v, scratch.data());
    std::vector<double> score(ctx);
    for (int t = 0; t < ctx; ++t) {
      double s = 0;
      for (int i = 0; i < d.nope; ++i) {
        double k = 0;  // k_nope[t][i] = W_kb[h, i] . c[t]
        for (int j = 0; j < d.kv_lora; ++j) k += kv_b[(static_cast<size_t>(h) * (d.nope + d.v) + i) * d.kv_lora + j] * cache[t * width + j];
        s += q[h * (d.nope + d.rope) + i] * k;
      }
      for (int j = 0; j < d.rope; ++j) s += q[h * (d.nope + d.rope) + d.nope + j] * cache[t * width + d.kv_lora + j];
      score[t] = s * d.scale;
    }
    const double mx = *std::max_element(score.begin(), score.end());
    double sum = 0;
    for (double& s : score) sum += (s = std::exp(s - mx));
    for (int e = 0; e < d.v; ++e) {
      double acc = 0;
      for (int t = 0; t < ctx; ++t) {
        double v = 0;
        for (int j = 0; j < d.kv_lora; ++j) v += kv_b[(static_cast<size_t>(h) * (d.nope + d.v) + d.nope + e) * d.kv_lora + j] * cache[t * width + j];
        acc += score[t] / sum * v;
      }
      ref[h * d.v + e] = acc;
    }
  }
  close_all("mla_attend_head", out.data(), ref.data(), ref.size(), 1e-5, 1e-5);
}

void test_router() {
  std::printf("route_topk\n");
  const float logits[2 * 5] = {0.f, 2.f, 1.f, 2.f, -1.f, 3.f, 0.f, 0.f, 0.f, 0.f};
  int32_t idx[4];
  float w[4];
  route_topk(logits, 2, 5, 2, false, 2.0, idx, w);
  const double z0 = 1 + 2 * std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
  expect(idx[0] == 1 && idx[1] == 3, "top-2 of token 0 is experts 1 and 3 (tie to the lower index first)");
  std::vector<double> want = {2 * std::exp(2.0) / z0, 2 * std::exp(2.0) / z0};
  close_all("scaled softmax weights", w, want.data(), 2, 1e-7, 1e-6);
  expect(idx[2] == 0 && idx[3] == 1, "top-2 of token 1 is expert 0 then the lowest of the tied rest");
  route_topk(logits, 2, 5, 2, true, 2.0, idx, w);
  std::vector<double> half = {0.5, 0.5};
  close_all("norm_topk_prob renormalises (no scaling factor)", w, half.data(), 2, 1e-7, 1e-6);
  route_topk(logits, 1, 5, 1, true, 1.0, idx, w);
  std::vector<double> single = {std::exp(2.0) / z0};
  close_all("k = 1 never renormalises", w, single.data(), 1, 1e-7, 1e-6);
}

void test_sampling() {
  std::printf("sampling\n");
  std::vector<float> logits = {0.1f, 2.0f, 1.9f, -3.f, 2.0f};
  std::vector<float> work;
  std::vector<int32_t> order;
  Rng rng(1);
  SamplingParams greedy;
  expect(sample_token(logits.data(), 5, greedy, rng, work, order) == 1, "greedy takes the first arg-max");
  SamplingParams narrow;
  narrow.greedy = false;
  narrow.top_p = 1e-6f;
  expect(sample_token(logits.data(), 5, narrow, rng, work, order) == 1, "tiny top_p keeps only the most likely token");
  SamplingParams p;
  p.greedy = false;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  Rng a(42), b(42);
  bool same = true;
  for (int i = 0; i < 50; ++i) same = same && sample_token(logits.data(), 5, p, a, work, order) == sample_token(logits.data(), 5, p, b, work, order);
  expect(same, "same seed, same draws");
  // Frequencies follow softmax(logits / T) restricted to the nucleus.
  SamplingParams full;
  full.greedy = false;
  full.temperature = 1.5f;
  std::vector<int> count(5, 0);
  Rng r(7);
  const int N = 200000;
  for (int i = 0; i < N; ++i) ++count[sample_token(logits.data(), 5, full, r, work, order)];
  double z = 0;
  for (float l : logits) z += std::exp(l / 1.5);
  bool ok = true;
  for (int i = 0; i < 5; ++i) {
    const double pexp = std::exp(logits[i] / 1.5) / z, pgot = static_cast<double>(count[i]) / N;
    if (std::fabs(pexp - pgot) > 5 * std::sqrt(pexp * (1 - pexp) / N) + 1e-4) {
      std::printf("    token %d: frequency %.4f, expected %.4f\n", i, pgot, pexp);
      ok = false;
    }
  }
  expect(ok, "sampled frequencies match softmax(logits / T)");
  SamplingParams nucleus;
  nucleus.greedy = false;
  nucleus.top_p = 0.5f;  // p = .33 (token 1), .33 (token 4), .30, .05, .002: the first two reach 0.5
  std::fill(count.begin(), count.end(), 0);
  for (int i = 0; i < 20000; ++i) ++count[sample_token(logits.data(), 5, nucleus, r, work, order)];
  expect(count[0] == 0 && count[2] == 0 && count[3] == 0 && count[1] > 0 && count[4] > 0, "top_p 0.5 keeps only the two most likely tokens");
}

void test_thread_pool() {
  std::printf("thread pool\n");
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(1001);
  for (auto& h : hits) h = 0;
  pool.parallel_for(1001, 3, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) ++hits[i];
  });
  bool once = true;
  for (auto& h : hits) once = once && h == 1;
  expect(once, "parallel_for visits every index exactly once");
  expect_throws([&] { pool.parallel_for(100, 1, [](int64_t a, int64_t) { if (a >= 50) throw Error("boom in chunk"); }); },
                "boom in chunk", "an exception in a chunk reaches the caller");
  int after = 0;
  pool.parallel_for(10, 1, [&](int64_t a, int64_t b) { if (a == 0) after = 1; });
  expect(after == 1, "the pool keeps working after an exception");
}

void test_moe_plan() {
  std::printf("MoePlan grouping\n");
  MoePlan p;
  p.layer = 3;
  p.tokens = 3;
  p.k = 2;
  p.expert = {4, 1, 1, 0, 4, 2};
  p.weight = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  p.group(5);
  expect((p.active == std::vector<int32_t>{0, 1, 2, 4}), "active experts ascending");
  expect((p.group_begin == std::vector<int32_t>{0, 1, 3, 4, 6}), "group offsets");
  expect((p.group_token == std::vector<int32_t>{1, 0, 1, 2, 0, 2}), "tokens ascending within an expert");
  expect(p.group_weight[1] == 0.2f && p.group_weight[2] == 0.3f, "weights follow their tokens");
  p.expert[0] = 9;
  expect_throws([&] { p.group(5); }, "expert 9", "an out-of-range expert id is refused");
}

void test_weight_store() {
  std::printf("WeightStore bounds and shape checks\n");
  // A tiny fake model: 1 dense layer, tensors laid out back to back in one file.
  ModelConfig c;
  c.vocab_size = 8;
  c.hidden_size = 4;
  c.num_hidden_layers = 1;
  c.intermediate_size = 6;
  c.num_attention_heads = 1;
  c.kv_lora_rank = 2;
  c.qk_nope_head_dim = 2;
  c.qk_rope_head_dim = 2;
  c.v_head_dim = 2;
  c.first_k_dense_replace = 1;
  c.eos_token_id = 1;
  c.bos_token_id = 0;
  const std::string path = "/tmp/moe_kernel_tests_weights.bin";
  std::vector<TensorSource> ts;
  uint64_t off = 8;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    TensorSource t;
    t.name = name;
    t.file = path;
    t.offset = off;
    t.dtype = DType::BF16;
    t.shape = shape;
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    t.nbytes = static_cast<uint64_t>(n) * 2;
    off += t.nbytes;
    ts.push_back(t);
  };
  add("model.embed_tokens.weight", {8, 4});
  add("model.norm.weight", {4});
  add("lm_head.weight", {8, 4});
  add("model.layers.0.input_layernorm.weight", {4});
  add("model.layers.0.post_attention_layernorm.weight", {4});
  add("model.layers.0.self_attn.q_proj.weight", {4, 4});
  add("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", {4, 4});
  add("model.layers.0.self_attn.kv_a_layernorm.weight", {2});
  add("model.layers.0.self_attn.kv_b_proj.weight", {4, 2});
  add("model.layers.0.self_attn.o_proj.weight", {4, 2});
  add("model.layers.0.mlp.gate_proj.weight", {6, 4});
  add("model.layers.0.mlp.up_proj.weight", {6, 4});
  add("model.layers.0.mlp.down_proj.weight", {4, 6});
  {
    std::ofstream f(path, std::ios::binary);
    std::vector<char> zeros(off, 0);
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  bool opened = false;
  try {
    opened = WeightStore::open(c, ts)->weights().layers.size() == 1;
  } catch (const std::exception& e) {
    std::printf("    unexpected: %s\n", e.what());
  }
  expect(opened, "a consistent tensor list opens");
  auto with = [&](const std::function<void(std::vector<TensorSource>&)>& edit) {
    std::vector<TensorSource> copy = ts;
    edit(copy);
    return copy;
  };
  expect_throws([&] { WeightStore::open(c, with([](auto& v) { v.back().offset += 1000; })); }, "model.layers.0.mlp.down_proj.weight",
                "an offset past the end names the tensor");
  expect_throws([&] { WeightStore::open(c, with([](auto& v) { v.back().offset = ~0ull - 4; })); }, "lie outside",
                "an offset that would overflow is caught");
  expect_throws([&] { WeightStore::open(c, with([](auto& v) { v[5].shape = {4, 3}; })); }, "q_proj.weight: shape [4, 3]",
                "a wrong shape names the tensor and both shapes");
  expect_throws([&] { WeightStore::open(c, with([](auto& v) { v[5].nbytes = 4; })); }, "q_proj.weight: 4 bytes",
                "nbytes disagreeing with dtype x shape is refused");
  expect_throws([&] { WeightStore::open(c, with([](auto& v) { v.erase(v.begin() + 6); })); }, "missing tensor model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
                "a missing tensor is named");
  expect_throws([&] { WeightStore::open(c, with([](auto& v) { v[0].file = "/nonexistent/shard.safetensors"; })); },
                "/nonexistent/shard.safetensors", "a missing file is named");
  expect_throws([&] { WeightStore::open(c, with([](auto& v) { v.push_back(v[0]); })); }, "listed twice", "duplicate names are refused");
  ModelConfig bad = c;
  bad.rope.type = "dynamic";
  expect_throws([&] { WeightStore::open(bad, ts); }, "rope_scaling.type", "an unsupported rope type is refused by name");
  std::remove(path.c_str());
}

}  // namespace

// The GPU-order expert (mlp_forward_gpu_order): the AVX-512 version gives the scalar reference's bits
// (the reference's own agreement with the CUDA decode kernel is tests/cuda/tests_ffn.cu's), both are the FFN
// within bf16 tolerance of an fp64 reference (h rounded to bf16, as the GPU does), and bad shapes are refused.
// Shapes: DeepSeek-V2-Lite's (2048 x 1408: the last down round covers 16 of 32 lanes) and a small one whose
// last round covers 8 lanes; token counts across the accumulator block of 64.
void test_mlp_gpu_order() {
  std::printf("mlp_forward_gpu_order (routed expert in the CUDA decode kernel's rounding)\n");
  Lcg rng(11);
  ThreadPool pool(3);
  struct Shape { int H, F; std::vector<int> tokens; };
  for (const Shape& sh : {Shape{512, 328, {1, 3, 70}}, Shape{2048, 1408, {1, 5}}}) {
    const int H = sh.H, F = sh.F;
    Bf16Matrix g(F, H, rng, 0.05f), u(F, H, rng, 0.05f), d(H, F, rng, 0.05f);
    MlpWeights w;
    w.gate = g.view;
    w.up = u.view;
    w.down = d.view;
    for (int T : sh.tokens) {
      const std::string what = "gpu-order H=" + std::to_string(H) + " F=" + std::to_string(F) + " T=" + std::to_string(T);
      std::vector<float> x = random_vec(static_cast<size_t>(T) * H, rng);
      for (float& v : x) v = bf16_to_f32(f32_to_bf16(v));
      FfnScratch s1, s2;
      std::vector<float> ys(static_cast<size_t>(T) * H, 7.f), yv(ys.size(), 9.f);
      mlp_forward_gpu_order(x.data(), T, w, ys.data(), false, 1.f, &pool, s1, false);
      if (gpu_order_vectorized()) {
        mlp_forward_gpu_order(x.data(), T, w, yv.data(), false, 1.f, &pool, s2, true);
        size_t differ = 0;
        for (size_t i = 0; i < ys.size(); ++i) differ += ys[i] != yv[i];
        expect(differ == 0, what + ": AVX-512 equals the scalar reference bit for bit (" + std::to_string(differ) + " of " + std::to_string(ys.size()) + " differ)");
      } else if (T == 1) {
        std::printf("  skipped: the AVX-512 version (this CPU lacks AVX-512BW)\n");
      }
      std::vector<double> ref(static_cast<size_t>(T) * H);
      for (int t = 0; t < T; ++t) {
        std::vector<double> hmid(F);
        for (int f = 0; f < F; ++f) {
          double a = 0, b = 0;
          for (int k = 0; k < H; ++k) {
            const double xv = x[static_cast<size_t>(t) * H + k];
            a += xv * matrix_at(w.gate, f, k);
            b += xv * matrix_at(w.up, f, k);
          }
          hmid[f] = bf16_to_f32(f32_to_bf16(static_cast<float>(a / (1.0 + std::exp(-a)) * b)));
        }
        for (int o = 0; o < H; ++o) {
          double acc = 0;
          for (int f = 0; f < F; ++f) acc += hmid[f] * matrix_at(w.down, o, f);
          ref[static_cast<size_t>(t) * H + o] = acc;
        }
      }
      // h is rounded to bf16 on both sides; an fp32 gate or up near a rounding boundary may round the other way.
      close_all(what + " against fp64", ys.data(), ref.data(), ref.size(), 2e-3, 2e-2);
    }
    // accumulate and scale, as mlp_forward: out += 0.5 * ffn(x)
    std::vector<float> x = random_vec(static_cast<size_t>(2) * H, rng), y1(static_cast<size_t>(2) * H), acc(y1.size(), 1.f);
    FfnScratch s;
    mlp_forward_gpu_order(x.data(), 2, w, y1.data(), false, 1.f, &pool, s, false);
    mlp_forward_gpu_order(x.data(), 2, w, acc.data(), true, 0.5f, &pool, s, false);
    std::vector<double> want(y1.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = 1.0 + 0.5 * static_cast<double>(y1[i]);
    close_all("gpu-order accumulate", acc.data(), want.data(), want.size(), 1e-6, 1e-6);
  }
  // SiLU: within a few ulp of the exact value over the range the kernel sees.
  {
    double worst = 0;
    for (int i = -20000; i <= 20000; ++i) {
      const float gv = static_cast<float>(i) * 1e-3f;
      const double exact = gv / (1.0 + std::exp(-static_cast<double>(gv)));
      if (exact != 0) worst = std::max(worst, std::fabs(gpu_order_silu(gv) - exact) / std::fabs(exact));
    }
    expect(worst < 5e-7, "gpu-order SiLU within 5e-7 relative of the exact one on [-20, 20] (worst " + std::to_string(worst) + ")");
  }
  Bf16Matrix g(8, 200, rng), u(8, 200, rng), d(200, 8, rng);
  MlpWeights bad;
  bad.gate = g.view;
  bad.up = u.view;
  bad.down = d.view;
  std::vector<float> x(200), y(200);
  FfnScratch s;
  expect_throws([&] { mlp_forward_gpu_order(x.data(), 1, bad, y.data(), false, 1.f, nullptr, s, false); }, "multiple of 256", "gpu-order refuses hidden 200");
}

int main() {
  std::printf("CPU: %s\n", cpu_features().describe().c_str());
  test_linear();
  test_mlp();
  test_mlp_gpu_order();
  test_rmsnorm_silu();
  test_rope();
  test_mla();
  test_router();
  test_sampling();
  test_thread_pool();
  test_moe_plan();
  test_weight_store();
  if (failures()) {
    std::printf("%d check(s) FAILED\n", failures());
    return 1;
  }
  std::printf("all kernel tests passed\n");
  return 0;
}
