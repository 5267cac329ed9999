// Quantized expert formats (issue 13): the layout arithmetic, fp16 rounding, and the quantizer's
// error bounds against the bf16 weights it came from. The kernels' checks (CPU here, GPU in
// tests/cuda) compare against dequantize_row, which these tests pin to the format's definition.
// The CPU kernels (expert_kernels.h) run on every instruction set this CPU has (the others are reported
// as skipped, by name) against double-precision references built from dequantize_row; the CPU expert
// executor's quantized jobs and the fidelity tool are checked against the same references.
// Run: moe_quant_tests (exit status 0 = all passed)
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "moe/error.h"
#include "moe/offload/cpu_expert_executor.h"
#include "moe/quant/expert_blobs.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/expert_kernels.h"
#include "moe/quant/fidelity.h"
#include "moe/quant/quantize.h"
#include "moe/quant/quantized_file.h"
#include "moe/thread_pool.h"

using namespace moe;
using namespace moe::quant;
using namespace moe_test;

namespace {

struct Bf16Matrix {
  std::vector<uint16_t> data;
  Matrix view;
  Bf16Matrix(int rows, int cols, Lcg& rng, float scale) : data(static_cast<size_t>(rows) * cols) {
    for (uint16_t& v : data) v = f32_to_bf16(rng.next() * scale);
    view = Matrix{data.data(), DType::BF16, rows, cols};
  }
};

void test_layout() {
  // DeepSeek-V2-Lite: hidden 2048, moe_intermediate_size 1408.
  const ExpertLayout b = expert_layout(ExpertDType::BF16, 2048, 1408);
  expect(b.bytes == size_t(3) * 1408 * 2048 * 2, "bf16 blob is exactly the three bf16 matrices");
  expect(b.up.q == size_t(1408) * 2048 * 2 && b.down.q == 2 * b.up.q, "bf16 gate | up | down back to back");
  const ExpertLayout i8 = expert_layout(ExpertDType::INT8, 2048, 1408);
  const size_t q8 = size_t(3) * 1408 * 2048;
  expect(i8.gate.scale >= q8 && i8.gate.scale % 256 == 0, "int8 scales after the weights, aligned");
  expect(i8.up.scale == i8.gate.scale + 1408 * 4, "int8 gate and up scales adjacent");
  expect(i8.bytes % 256 == 0 && i8.bytes >= q8 + (1408 * 2 + 2048) * 4 && i8.bytes < q8 + 20000, "int8 blob size");
  const ExpertLayout i4 = expert_layout(ExpertDType::INT4, 2048, 1408, 64);
  const size_t q4 = q8 / 2, g4 = 2 * (size_t(1408) * (2048 / 64) * 2 + size_t(2048) * (1408 / 64)) * 2;  // scales + zeros
  expect(i4.up.q == size_t(1408) * 2048 / 2, "int4 packs two per byte");
  expect(i4.up.zero == i4.gate.zero + size_t(1408) * 32 * 2, "int4 gate and up zeros adjacent");
  expect(i4.bytes >= q4 + g4 && i4.bytes < q4 + g4 + 1024, "int4 blob size");
  expect_throws([] { expert_layout(ExpertDType::INT4, 2048, 1408, 48); }, "group size 48", "int4 group must divide the dims");
  expect_throws([] { expert_layout(ExpertDType::INT4, 2048, 1408, 0); }, "group size", "int4 group 0 refused");
  expect_throws([] { parse_expert_dtype("fp8"); }, "unknown expert dtype 'fp8'", "unknown dtype named");
  expect(parse_expert_dtype("int4") == ExpertDType::INT4 && std::strcmp(expert_dtype_name(ExpertDType::INT8), "int8") == 0, "dtype names");
}

void test_f16() {
  // Every finite half survives a round trip through float (an independent check of the encoder).
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    if ((h & 0x7c00u) == 0x7c00u) continue;  // inf / NaN
    if (f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) != h) ++bad;
  }
  expect(bad == 0, "f16 round trip of every finite half");
  expect(f32_to_f16(1.0f) == 0x3c00 && f32_to_f16(-2.0f) == 0xc000 && f32_to_f16(65520.f) == 0x7c00, "f16 known values");
  // Halfway cases round to even: 1 + 2^-11 -> 1.0, 1 + 3 * 2^-11 -> 1 + 2^-9.
  expect(f32_to_f16(1.0f + std::ldexp(1.f, -11)) == 0x3c00 && f32_to_f16(1.0f + 3 * std::ldexp(1.f, -11)) == 0x3c02, "f16 ties to even");
}

// |w - dequant(w)| per element within half a quantization step (plus fp16 rounding of the zero point).
void check_error_bound(ExpertDType dtype, int hidden, int d_ff, int group, Int4Fit fit = Int4Fit::Search) {
  Lcg rng(7 + static_cast<int>(dtype));
  const ExpertLayout L = expert_layout(dtype, hidden, d_ff, group);
  Bf16Matrix gate(d_ff, hidden, rng, 0.05f), up(d_ff, hidden, rng, 0.05f), down(hidden, d_ff, rng, 0.05f);
  // A constant group and a zero row: the edge cases of the scale.
  for (int c = 0; c < group && c < hidden; ++c) gate.data[static_cast<size_t>(c)] = f32_to_bf16(0.03f);
  for (int c = 0; c < hidden; ++c) up.data[static_cast<size_t>(c)] = 0;
  std::vector<uint8_t> blob(L.bytes + 64, 0xab);
  quantize_expert(L, gate.view, up.view, down.view, blob.data(), fit);
  expect(blob[L.bytes] == 0xab, std::string(expert_dtype_name(dtype)) + ": nothing written past the blob");
  const Matrix* src[3] = {&gate.view, &up.view, &down.view};
  int bad = 0;
  double worst = 0;
  for (int p = 0; p < 3; ++p) {
    const MatrixLayout& M = part_layout(L, static_cast<Part>(p));
    std::vector<float> row(static_cast<size_t>(M.cols)), want(static_cast<size_t>(M.cols));
    for (int r = 0; r < M.rows; ++r) {
      dequantize_row(L, blob.data(), static_cast<Part>(p), r, row.data());
      matrix_row_to_f32(*src[p], r, want.data());
      for (int c = 0; c < M.cols; ++c) {
        const double err = std::fabs(static_cast<double>(row[static_cast<size_t>(c)]) - want[static_cast<size_t>(c)]);
        double tol = 0;  // bf16: exact
        if (dtype == ExpertDType::INT8) {
          // Half a step plus float noise.
          tol = reinterpret_cast<const float*>(blob.data() + M.scale)[r] * 0.5 + 1e-7;
        } else if (dtype == ExpertDType::INT4) {
          // The window search may clip a group's extremes, so no half-step bound; but each weight must
          // get the nearest of its group's 16 stored levels (an ulp of the scale aside).
          const size_t gi = static_cast<size_t>(r) * (M.cols / group) + c / group;
          const double st = f16_to_f32(reinterpret_cast<const uint16_t*>(blob.data() + M.scale)[gi]);
          const double z = f16_to_f32(reinterpret_cast<const uint16_t*>(blob.data() + M.zero)[gi]);
          double nearest = std::fabs(z == 0 ? st - want[static_cast<size_t>(c)] : 1e30);  // a constant group: q 1
          for (int k = 0; k < 16; ++k) nearest = std::min(nearest, std::fabs((k - z) * st - want[static_cast<size_t>(c)]));
          tol = nearest + std::fabs(st) * 1e-6 + 1e-7;
          // Round-to-nearest over [min, max]: half a step, plus the fp16 rounding of the zero point (up to
          // 15 * 2^-11 steps), plus float noise.
          if (fit == Int4Fit::Nearest) tol = std::min(tol, std::fabs(st) * (0.5 + 15.0 / 2048) + 1e-7);
        }
        worst = std::max(worst, err);
        if (err > tol) ++bad;
      }
    }
  }
  const std::string what = dtype != ExpertDType::INT4 ? ": every weight within half a quantization step"
                           : fit == Int4Fit::Nearest ? " (round-to-nearest): every weight on its nearest level, within half a step"
                                                     : ": every weight on its group's nearest level";
  expect(bad == 0, std::string(expert_dtype_name(dtype)) + what + " (worst " + std::to_string(worst) + ")");
  // The zero row comes back exactly; a constant group (int4: one group's scale) to fp16 precision.
  std::vector<float> row(static_cast<size_t>(hidden));
  dequantize_row(L, blob.data(), Part::Up, 0, row.data());
  bool zeros = true;
  for (float v : row) zeros = zeros && v == 0.f;
  expect(zeros, std::string(expert_dtype_name(dtype)) + ": a zero row dequantizes to zeros");
  dequantize_row(L, blob.data(), Part::Gate, 0, row.data());
  if (dtype != ExpertDType::INT8) expect(std::fabs(row[0] - bf16_to_f32(f32_to_bf16(0.03f))) < 2e-5, std::string(expert_dtype_name(dtype)) + ": a constant group keeps its value");
}


// ---- int4: the window search against round-to-nearest and a dense grid ---------------------------

// Standard normal from the LCG (Box-Muller): trained and random checkpoints alike have bell-shaped
// groups, where clipping the extremes pays; on uniform data RTN is already near the optimum.
float gaussian(Lcg& rng) {
  const double u1 = 0.5 * (rng.next() + 1.0) * (1 - 1e-12) + 1e-12, u2 = 0.5 * (rng.next() + 1.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

// Squared error of the group w[0 .. n) under the fp16 pair stored from (lo, step), each weight on its
// nearest level: the format's meaning, computed in double, independent of quantize.cpp.
double pair_error(const float* w, int n, double lo, double step) {
  const double s = f16_to_f32(f32_to_f16(static_cast<float>(step)));
  if (!(s > 0)) return 1e300;
  const double z = f16_to_f32(f32_to_f16(static_cast<float>(-lo / s)));
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const double q = std::clamp(std::nearbyint(w[i] / s + z), 0.0, 15.0);
    const double d = (q - z) * s - w[i];
    e += d * d;
  }
  return e;
}

void test_int4_search() {
  std::printf("int4 window search\n");
  Lcg rng(41);
  const int hidden = 512, d_ff = 256, group = 64;
  const ExpertLayout L = expert_layout(ExpertDType::INT4, hidden, d_ff, group);
  std::vector<uint16_t> g(static_cast<size_t>(d_ff) * hidden), u(g.size()), d(g.size());
  for (auto* v : {&g, &u, &d}) for (uint16_t& x : *v) x = f32_to_bf16(0.02f * gaussian(rng));
  const Matrix G{g.data(), DType::BF16, d_ff, hidden}, U{u.data(), DType::BF16, d_ff, hidden}, D{d.data(), DType::BF16, hidden, d_ff};
  std::vector<uint8_t> blob(L.bytes);
  quantize_expert(L, G, U, D, blob.data());
  std::vector<uint8_t> nearest_blob(L.bytes);
  quantize_expert(L, G, U, D, nearest_blob.data(), Int4Fit::Nearest);
  std::vector<float> w(static_cast<size_t>(hidden)), got(w.size()), got_nearest(w.size());
  int nearest_off = 0;
  double sum_got = 0, sum_rtn = 0, sum_grid = 0, sum_got_sampled = 0;
  int worse = 0, sampled = 0;
  for (int r = 0; r < d_ff; ++r) {
    matrix_row_to_f32(G, r, w.data());
    dequantize_row(L, blob.data(), Part::Gate, r, got.data());
    dequantize_row(L, nearest_blob.data(), Part::Gate, r, got_nearest.data());
    for (int c0 = 0; c0 < hidden; c0 += group) {
      const float* x = w.data() + c0;
      double e = 0, e_nearest = 0, lo = x[0], hi = x[0];
      for (int i = 0; i < group; ++i) {
        const double dd = static_cast<double>(got[static_cast<size_t>(c0 + i)]) - x[i];
        const double dn = static_cast<double>(got_nearest[static_cast<size_t>(c0 + i)]) - x[i];
        e += dd * dd, e_nearest += dn * dn;
        lo = std::min(lo, static_cast<double>(x[i])), hi = std::max(hi, static_cast<double>(x[i]));
      }
      const double rtn = pair_error(x, group, lo, static_cast<float>((hi - lo) / 15));
      if (e > rtn * (1 + 1e-5) + 1e-14) ++worse;
      if (std::fabs(e_nearest - rtn) > rtn * 1e-5 + 1e-14) ++nearest_off;
      sum_got += e, sum_rtn += rtn;
      if (r % 8 == 0) {  // a dense grid of windows (width 0.50 .. 1.05, shift -0.25 .. 0.25 half-ranges)
        const double c = 0.5 * (lo + hi), h = 0.5 * (hi - lo);
        double best = rtn;
        for (int a = 50; a <= 105; ++a) {
          for (int b = -25; b <= 25; ++b) best = std::min(best, pair_error(x, group, c - a * 0.01 * h + b * 0.01 * h, 2 * a * 0.01 * h / 15));
        }
        sum_grid += best, sum_got_sampled += e, ++sampled;
      }
    }
  }
  expect(nearest_off == 0, "int4 Nearest: each group's error is round-to-nearest's over [min, max] (" + std::to_string(nearest_off) + " differ)");
  expect(worse == 0, "int4 search: no group worse than round-to-nearest over [min, max] (" + std::to_string(worse) + " worse)");
  const double vs_rtn = std::sqrt(sum_got / sum_rtn), vs_grid = std::sqrt(sum_got_sampled / sum_grid);
  std::printf("  RMS error vs RTN %.4f, vs a dense grid of %d groups %.4f\n", vs_rtn, sampled, vs_grid);
  // Gaussian groups of 64: RMS 0.926 of RTN's (8.30% against 8.97% of the weights' RMS); the grid search
  // (no refit) reaches about the same, so the 6 windows lose little to 2,856.
  expect(vs_rtn < 0.95, "int4 search: RMS error at most 0.95 of RTN's on Gaussian groups (got " + std::to_string(vs_rtn) + ")");
  expect(vs_grid < 1.04, "int4 search: within 4% of a dense grid of windows (got " + std::to_string(vs_grid) + ")");
}

// ---- CPU kernels ------------------------------------------------------------------------------

std::vector<LinearIsa> runnable_isas() {
  std::vector<LinearIsa> out;
  for (LinearIsa isa : {LinearIsa::Scalar, LinearIsa::Avx2, LinearIsa::Avx512, LinearIsa::Avx512Bf16}) {
    if (isa_supported(isa)) out.push_back(isa);
    else std::printf("  (skipped on this CPU: %s)\n", linear_isa_name(isa));
  }
  return out;
}

// One random expert (bf16 weights of amplitude 0.05, a constant group and a zero row as in
// check_error_bound) and its blob.
struct TestExpert {
  ExpertLayout L;
  std::vector<uint16_t> g, u, d;
  MlpWeights w;
  std::vector<uint8_t> blob;
  TestExpert(ExpertDType dtype, int hidden, int d_ff, int group, Lcg& rng) : L(expert_layout(dtype, hidden, d_ff, group)) {
    auto fill = [&](std::vector<uint16_t>& v, size_t n) {
      v.resize(n);
      for (uint16_t& x : v) x = f32_to_bf16(rng.next() * 0.05f);
    };
    fill(g, static_cast<size_t>(d_ff) * hidden);
    fill(u, static_cast<size_t>(d_ff) * hidden);
    fill(d, static_cast<size_t>(hidden) * d_ff);
    for (int c = 0; c < hidden / 2; ++c) g[static_cast<size_t>(hidden) + c] = f32_to_bf16(0.02f);
    for (int c = 0; c < d_ff; ++c) d[static_cast<size_t>(c)] = 0;
    w.gate = Matrix{g.data(), DType::BF16, d_ff, hidden};
    w.up = Matrix{u.data(), DType::BF16, d_ff, hidden};
    w.down = Matrix{d.data(), DType::BF16, hidden, d_ff};
    blob.resize(L.bytes);
    quantize_expert(L, w.gate, w.up, w.down, blob.data());
  }
};

std::string label(const ExpertLayout& L) {
  return std::string(expert_dtype_name(L.dtype)) + (L.dtype == ExpertDType::INT4 ? " g" + std::to_string(L.group) : "");
}

// y[t, o] = sum_c x[t, c] * dequantize_row(part, o)[c] in double, [T, rows].
std::vector<double> ref_rows(const std::vector<float>& x, int T, const ExpertLayout& L, const uint8_t* blob, Part part) {
  const MatrixLayout& M = part_layout(L, part);
  std::vector<double> y(static_cast<size_t>(T) * M.rows);
  std::vector<float> w(static_cast<size_t>(M.cols));
  for (int o = 0; o < M.rows; ++o) {
    dequantize_row(L, blob, part, o, w.data());
    for (int t = 0; t < T; ++t) {
      double s = 0;
      for (int c = 0; c < M.cols; ++c) s += static_cast<double>(x[static_cast<size_t>(t) * M.cols + c]) * w[static_cast<size_t>(c)];
      y[static_cast<size_t>(t) * M.rows + o] = s;
    }
  }
  return y;
}

std::vector<float> random_rows(int T, int cols, Lcg& rng) {
  std::vector<float> x(static_cast<size_t>(T) * cols);
  for (float& v : x) v = rng.next();
  return x;
}

// fp32 sums of K products of |x| < 1, |w| < 0.05 against a double reference: error ~ sqrt(K) * eps * 0.05;
// a wrong nibble, scale or zero is off by ~1e-2 and fails by orders of magnitude.
constexpr double kRowRtol = 1e-5;
double row_atol(int K) { return 2e-7 * std::sqrt(static_cast<double>(K)); }

void test_linear_rows_q() {
  std::printf("linear_rows_q\n");
  Lcg rng(11);
  struct Shape {
    ExpertDType dtype;
    int hidden, d_ff, group;
  };
  // int8 with sizes that leave SIMD tails; int4 groups 64 and 128, and 16 (AVX-512 falls back to the
  // AVX2 kernel) and 6 (every ISA falls back to the scalar kernel).
  const Shape shapes[] = {{ExpertDType::INT8, 200, 75, 0},  {ExpertDType::INT8, 256, 128, 0}, {ExpertDType::INT4, 256, 192, 64},
                          {ExpertDType::INT4, 256, 128, 128}, {ExpertDType::INT4, 96, 48, 16},  {ExpertDType::INT4, 36, 24, 6}};
  for (const Shape& sh : shapes) {
    TestExpert e(sh.dtype, sh.hidden, sh.d_ff, sh.group, rng);
    for (LinearIsa isa : runnable_isas()) {
      for (int T : {1, 3, 9, 16}) {
        for (Part part : {Part::Gate, Part::Up, Part::Down}) {
          const MatrixLayout& M = part_layout(e.L, part);
          std::vector<float> x = random_rows(T, M.cols, rng);
          const std::vector<double> ref = ref_rows(x, T, e.L, e.blob.data(), part);
          // Odd sub-range [o0, o1): only those columns are written.
          const int o0 = 3, o1 = M.rows - 2;
          std::vector<float> y(static_cast<size_t>(T) * M.rows, NAN);
          linear_rows_q(x.data(), T, e.L, e.blob.data(), part, o0, o1, y.data(), isa);
          std::vector<float> got;
          std::vector<double> want;
          bool untouched = true;
          for (int t = 0; t < T; ++t) {
            for (int o = 0; o < M.rows; ++o) {
              const size_t i = static_cast<size_t>(t) * M.rows + o;
              if (o >= o0 && o < o1) {
                got.push_back(y[i]);
                want.push_back(ref[i]);
              } else {
                untouched = untouched && std::isnan(y[i]);
              }
            }
          }
          const std::string what = "linear_rows_q " + label(e.L) + " " + linear_isa_name(isa) + " part " +
                                   std::to_string(static_cast<int>(part)) + " T=" + std::to_string(T);
          close_all(what, got.data(), want.data(), got.size(), row_atol(M.cols), kRowRtol);
          expect(untouched, what + ": rows outside [o0, o1) untouched");
        }
      }
    }
  }
  TestExpert e(ExpertDType::INT8, 64, 32, 0, rng);
  std::vector<float> x(64), y(32);
  expect_throws([&] { linear_rows_q(x.data(), 1, e.L, e.blob.data(), Part::Gate, 0, 33, y.data(), LinearIsa::Auto); }, "outside [0, 32)",
                "rows beyond the matrix refused");
  expect_throws([&] { linear_rows_q(x.data(), 1, e.L, nullptr, Part::Gate, 0, 1, y.data(), LinearIsa::Auto); }, "no expert blob", "null blob refused");
}

// down(silu(gate x) * up x) in double on the dequantized weights; bf16x rounds x and h to bf16 as
// mlp_forward's Avx512Bf16 mode does.
std::vector<double> ref_ffn(const std::vector<float>& x, int T, const ExpertLayout& L, const uint8_t* blob, bool bf16x) {
  const int H = L.hidden, F = L.d_ff;
  std::vector<float> xr(x);
  if (bf16x)
    for (float& v : xr) v = bf16_to_f32(f32_to_bf16(v));
  const std::vector<double> g = ref_rows(xr, T, L, blob, Part::Gate), u = ref_rows(xr, T, L, blob, Part::Up);
  std::vector<float> h(static_cast<size_t>(T) * F);
  std::vector<double> hd(h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    hd[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    if (bf16x) hd[i] = bf16_to_f32(f32_to_bf16(static_cast<float>(hd[i])));
  }
  std::vector<double> y(static_cast<size_t>(T) * H, 0.0);
  std::vector<float> w(static_cast<size_t>(F));
  for (int o = 0; o < H; ++o) {
    dequantize_row(L, blob, Part::Down, o, w.data());
    for (int t = 0; t < T; ++t) {
      double s = 0;
      for (int f = 0; f < F; ++f) s += hd[static_cast<size_t>(t) * F + f] * w[static_cast<size_t>(f)];
      y[static_cast<size_t>(t) * H + o] = s;
    }
  }
  return y;
}

void test_expert_ffn_q() {
  std::printf("expert_ffn_q_forward\n");
  Lcg rng(12);
  ThreadPool pool(3);
  for (auto [dtype, group] : {std::pair{ExpertDType::INT8, 0}, {ExpertDType::INT4, 64}, {ExpertDType::INT4, 128}, {ExpertDType::BF16, 0}}) {
    TestExpert e(dtype, 256, 128, group, rng);
    for (LinearIsa isa : runnable_isas()) {
      const bool bf16x = isa == LinearIsa::Avx512Bf16;
      for (int T : {1, 3, 16}) {
        std::vector<float> x = random_rows(T, 256, rng);
        for (float& v : x) v *= 3.f;  // hidden-state sized inputs, so the SiLU is not linear
        const std::vector<double> ref = ref_ffn(x, T, e.L, e.blob.data(), bf16x);
        // fp32: sums of K terms; bf16 activations: an fp32 value near a rounding boundary may round
        // the other way (kernel_tests' mlp tolerance).
        const double atol = bf16x ? 2e-3 : 1e-6, rtol = bf16x ? 2e-2 : 1e-4;
        const std::string what = "expert_ffn_q " + label(e.L) + " " + linear_isa_name(isa) + " T=" + std::to_string(T);
        FfnScratch scratch;
        std::vector<float> y(static_cast<size_t>(T) * 256, NAN);
        expert_ffn_q_forward(x.data(), T, e.L, e.blob.data(), y.data(), false, 1.f, &pool, scratch, isa);
        close_all(what, y.data(), ref.data(), ref.size(), atol, rtol);
        std::vector<float> acc(y.size(), 1.f);
        expert_ffn_q_forward(x.data(), T, e.L, e.blob.data(), acc.data(), true, 0.25f, &pool, scratch, isa);
        std::vector<double> ref_acc(ref.size());
        for (size_t i = 0; i < ref.size(); ++i) ref_acc[i] = 1.0 + 0.25 * ref[i];
        close_all(what + " accumulate", acc.data(), ref_acc.data(), ref_acc.size(), atol, rtol);
        if (dtype == ExpertDType::BF16) {  // a bf16 blob through expert_ffn_q_forward is mlp_forward
          std::vector<float> m(y.size());
          mlp_forward(x.data(), T, e.w, m.data(), false, 1.f, &pool, scratch, bf16x ? LinearIsa::Avx512 : isa);
          std::vector<double> md(m.begin(), m.end());
          if (!bf16x) close_all(what + " vs mlp_forward", y.data(), md.data(), md.size(), 1e-6, 1e-5);
        }
      }
    }
  }
}

void test_executor_q() {
  std::printf("CpuExpertExecutor with quantized jobs\n");
  Lcg rng(13);
  const int H = 128, F = 64;
  std::vector<TestExpert> ex;
  ex.emplace_back(ExpertDType::INT8, H, F, 0, rng);
  ex.emplace_back(ExpertDType::INT4, H, F, 64, rng);
  ex.emplace_back(ExpertDType::BF16, H, F, 0, rng);  // run as an unquantized job (weights)
  ex.emplace_back(ExpertDType::INT4, H, F, 32, rng);
  const int rows[] = {1, 3, 2, 4};
  for (LinearIsa isa : runnable_isas()) {
    for (int workers : {1, 2}) {
      offload::CpuExpertExecutor exec(workers, 2, isa, 4, H, F);
      std::vector<std::vector<float>> x(ex.size()), y(ex.size()), scale(ex.size());
      std::vector<offload::CpuExpertJob> jobs;
      for (size_t e = 0; e < ex.size(); ++e) {
        x[e] = random_rows(rows[e], H, rng);
        y[e].assign(static_cast<size_t>(rows[e]) * H, NAN);
        for (int r = 0; r < rows[e]; ++r) scale[e].push_back(0.5f + 0.25f * r);
        offload::CpuExpertJob j{ex[e].w, x[e].data(), rows[e], y[e].data(), scale[e].data()};
        if (ex[e].L.dtype != ExpertDType::BF16) {
          j.blob = ex[e].blob.data();
          j.layout = &ex[e].L;
        }
        jobs.push_back(j);
      }
      exec.start(&jobs);
      exec.wait();
      for (size_t e = 0; e < ex.size(); ++e) {
        const bool bf16x = isa == LinearIsa::Avx512Bf16;
        std::vector<double> want = ref_ffn(x[e], rows[e], ex[e].L, ex[e].blob.data(), bf16x);
        for (int r = 0; r < rows[e]; ++r)
          for (int c = 0; c < H; ++c) want[static_cast<size_t>(r) * H + c] *= scale[e][static_cast<size_t>(r)];
        close_all("executor " + std::string(linear_isa_name(isa)) + " " + std::to_string(workers) + " workers, " + label(ex[e].L) + " job",
                  y[e].data(), want.data(), want.size(), bf16x ? 2e-3 : 1e-6, bf16x ? 2e-2 : 1e-4);
      }
    }
  }
  offload::CpuExpertExecutor exec(1, 1, best_exact_isa(), 4, H, F);
  std::vector<float> x(H), y(H);
  const ExpertLayout wrong = expert_layout(ExpertDType::INT8, H, F + 64);
  std::vector<offload::CpuExpertJob> bad = {{ex[0].w, x.data(), 1, y.data(), nullptr}};
  bad[0].blob = ex[0].blob.data();
  expect_throws([&] { exec.start(&bad); }, "needs a layout of hidden 128, d_ff 64", "a blob without a layout refused");
  bad[0].layout = &wrong;
  expect_throws([&] { exec.start(&bad); }, "needs a layout", "a layout of other shapes refused");
}

// ---- fidelity -------------------------------------------------------------------------------------

// A tiny MoE model in memory: layer 0 dense (skipped), layers 1 and 2 with `experts` bf16 experts.
struct TinyModel {
  ModelConfig config;
  ModelWeights w;
  std::vector<std::unique_ptr<TestExpert>> store;
  TinyModel(int experts, Lcg& rng) {
    config.hidden_size = 128;
    config.moe_intermediate_size = 64;
    config.n_routed_experts = experts;
    config.rms_norm_eps = 1e-6;
    w.layers.resize(3);
    for (int l = 1; l < 3; ++l) {
      LayerWeights& lw = w.layers[static_cast<size_t>(l)];
      lw.moe = true;
      lw.post_norm.resize(128);
      for (float& v : lw.post_norm) v = 0.5f + 0.5f * std::fabs(rng.next());
      for (int e = 0; e < experts; ++e) {
        store.push_back(std::make_unique<TestExpert>(ExpertDType::BF16, 128, 64, 0, rng));
        lw.experts.push_back(store.back()->w);
      }
    }
  }
};

// ||y_q - y_ref|| / ||y_ref|| in double: y_q from the dequantized weights, y_ref from the bf16 ones.
double ref_rel_error(const std::vector<float>& x, int T, const MlpWeights& w, ExpertDType dtype, int group) {
  const ExpertLayout L = expert_layout(dtype, w.gate.cols, w.gate.rows, group), B = expert_layout(ExpertDType::BF16, w.gate.cols, w.gate.rows);
  std::vector<uint8_t> q(L.bytes), b(B.bytes);
  quantize_expert(L, w.gate, w.up, w.down, q.data());
  quantize_expert(B, w.gate, w.up, w.down, b.data());
  const std::vector<double> yq = ref_ffn(x, T, L, q.data(), false), yb = ref_ffn(x, T, B, b.data(), false);
  double num = 0, den = 0;
  for (size_t i = 0; i < yb.size(); ++i) num += (yq[i] - yb[i]) * (yq[i] - yb[i]), den += yb[i] * yb[i];
  return std::sqrt(num / den);
}

void test_fidelity() {
  std::printf("expert_fidelity\n");
  Lcg rng(14);
  TinyModel m(5, rng);
  FidelityOptions o;
  o.rows = 4;
  o.seed = 3;
  o.threads = 3;
  int calls = 0, last = 0;
  o.progress = [&](int done, int total) {
    ++calls;
    expect(done > last && total == 10, "progress counts up to the total");
    last = done;
  };
  std::vector<float> x = random_rows(4, 128, rng);
  for (auto [dtype, group] : {std::pair{ExpertDType::INT8, 0}, {ExpertDType::INT4, 64}, {ExpertDType::INT4, 32}}) {
    o.dtype = dtype;
    o.group = group;
    o.x = x.data();
    calls = last = 0;
    const FidelityResult r = expert_fidelity(m.config, m.w, o);
    expect(r.layers == std::vector<int>({1, 2}) && r.experts == 5 && r.errors.size() == 10, "fidelity: MoE layers only, layer-major");
    expect(calls == 10 && last == 10, "fidelity: one progress call per expert");
    const std::string name = expert_dtype_name(dtype) + std::string(" g") + std::to_string(group);
    std::vector<float> got;
    std::vector<double> want;
    for (int li = 0; li < 2; ++li) {
      for (int e = 0; e < 5; ++e) {
        got.push_back(static_cast<float>(r.errors[static_cast<size_t>(li) * 5 + e]));
        want.push_back(ref_rel_error(x, 4, m.w.layers[static_cast<size_t>(li + 1)].experts[static_cast<size_t>(e)], dtype, group));
      }
    }
    // The fp32 kernels' noise (~1e-6 of the output) against errors of ~1e-3 (int8) .. 1e-1 (int4).
    close_all("fidelity " + name + " errors vs double reference", got.data(), want.data(), want.size(), 1e-5, 1e-2);
    double mean = 0;
    for (double v : want) mean += v / want.size();
    const bool plausible = dtype == ExpertDType::INT8 ? (mean > 1e-4 && mean < 3e-2) : (mean > 1e-2 && mean < 0.3);
    expect(plausible, "fidelity " + name + ": mean relative error " + std::to_string(mean) + " in the format's range");
  }
  // Per-layer rows (activations captured from a run): layer li's experts see block li of x.
  {
    std::vector<float> xl = random_rows(4, 128, rng);
    std::vector<float> both(x);
    both.insert(both.end(), xl.begin(), xl.end());
    o.progress = nullptr;
    o.dtype = ExpertDType::INT8;
    o.x = both.data();
    o.x_layers = 2;
    const FidelityResult r = expert_fidelity(m.config, m.w, o);
    std::vector<float> got;
    std::vector<double> want;
    for (int li = 0; li < 2; ++li) {
      for (int e = 0; e < 5; ++e) {
        got.push_back(static_cast<float>(r.errors[static_cast<size_t>(li) * 5 + e]));
        want.push_back(ref_rel_error(li == 0 ? x : xl, 4, m.w.layers[static_cast<size_t>(li + 1)].experts[static_cast<size_t>(e)], ExpertDType::INT8, 0));
      }
    }
    close_all("fidelity int8 per-layer rows vs double reference", got.data(), want.data(), want.size(), 1e-5, 1e-2);
    o.x_layers = 3;
    expect_throws([&] { expert_fidelity(m.config, m.w, o); }, "x holds rows for 3 layers, the model has 2 MoE layers", "fidelity: per-layer rows for the wrong layer count refused");
    o.x_layers = 1;
  }
  // Random rows: deterministic in the seed whatever the thread count; bf16 measures kernel noise only.
  o.x = nullptr;
  o.progress = nullptr;
  o.dtype = ExpertDType::INT4;
  o.group = 64;
  const FidelityResult a = expert_fidelity(m.config, m.w, o);
  o.threads = 1;
  const FidelityResult b = expert_fidelity(m.config, m.w, o);
  expect(a.errors == b.errors, "fidelity: random rows deterministic across thread counts");
  o.seed = 4;
  expect(expert_fidelity(m.config, m.w, o).errors != a.errors, "fidelity: another seed, other rows");
  o.dtype = ExpertDType::BF16;
  double worst = 0;
  for (double v : expert_fidelity(m.config, m.w, o).errors) worst = std::max(worst, v);
  expect(worst < 1e-5, "fidelity bf16: kernel noise only (worst " + std::to_string(worst) + ")");
  o.rows = 0;
  expect_throws([&] { expert_fidelity(m.config, m.w, o); }, "rows must be >= 1", "fidelity: rows 0 refused");
  o.rows = 4;
  o.dtype = ExpertDType::INT4;
  o.group = 48;
  expect_throws([&] { expert_fidelity(m.config, m.w, o); }, "group size 48", "fidelity: a group that does not divide refused");
}

// ---- the blob buffer and the quantized experts file -------------------------------------------------

void test_blob_checksum() {
  std::printf("blob_checksum (XXH64, seed 0)\n");
  // The published XXH64 vectors: below 4 bytes, the 8-byte tail, and the 32-byte stripes.
  const std::pair<std::string, uint64_t> vectors[] = {
      {"", 0xEF46DB3751D8E999ull},
      {"a", 0xD24EC4F1A98C6E5Bull},
      {"abc", 0x44BC2CF5AD770999ull},
      {std::string(32, 'a'), 0x856E843298F99AD7ull},
      {"Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1ull},
      {"The quick brown fox jumps over the lazy dog", 0x0B242D361FDA71BCull},
  };
  for (const auto& [text, want] : vectors) {
    const uint64_t got = blob_checksum(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    expect(got == want, "xxh64 of a " + std::to_string(text.size()) + "-byte string");
  }
  // one flipped bit anywhere in a blob changes it
  std::vector<uint8_t> blob(1000);
  Lcg rng(5);
  for (uint8_t& b : blob) b = static_cast<uint8_t>(rng.next() * 127 + 128);
  const uint64_t base = blob_checksum(blob.data(), blob.size());
  int same = 0;
  for (size_t i = 0; i < blob.size(); i += 37) {
    blob[i] ^= 0x10;
    same += blob_checksum(blob.data(), blob.size()) == base;
    blob[i] ^= 0x10;
  }
  expect(same == 0, "a flipped bit changes the checksum");
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_all(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void test_expert_blobs() {
  std::printf("fill_expert_blobs\n");
  Lcg rng(21);
  TinyModel m(3, rng);
  const std::vector<int> layers = {1, 2};
  for (auto [dtype, group] : {std::pair{ExpertDType::BF16, 0}, {ExpertDType::INT8, 0}, {ExpertDType::INT4, 32}}) {
    const ExpertLayout L = expert_layout(dtype, 128, 64, group == 0 ? kDefaultInt4Group : group);
    std::vector<uint8_t> buf(expert_blobs_bytes(m.config, layers, L), 0xAB);
    fill_expert_blobs(m.config, m.w, layers, L, buf.data());
    bool equal = buf.size() == 6 * L.bytes;
    for (size_t i = 0; i < 6 && equal; ++i) {
      const MlpWeights& X = m.w.layers[static_cast<size_t>(layers[i / 3])].experts[i % 3];
      std::vector<uint8_t> want(L.bytes);
      quantize_expert(L, X.gate, X.up, X.down, want.data());
      equal = std::memcmp(buf.data() + i * L.bytes, want.data(), L.bytes) == 0;
    }
    expect(equal, std::string("fill: blob (mi * E + e) is quantize_expert's output for layer mi, expert e (") + expert_dtype_name(dtype) + ")");
  }
  const ExpertLayout L8 = expert_layout(ExpertDType::INT8, 128, 64);
  std::vector<uint8_t> full(expert_blobs_bytes(m.config, layers, L8)), part(full.size(), 0);
  fill_expert_blobs(m.config, m.w, layers, L8, full.data());
  const std::vector<size_t> only = {4};
  fill_expert_blobs(m.config, m.w, layers, L8, part.data(), &only);
  bool only_four = std::memcmp(part.data() + 4 * L8.bytes, full.data() + 4 * L8.bytes, L8.bytes) == 0;
  for (size_t i = 0; i < part.size(); ++i) only_four = only_four && (i / L8.bytes == 4 || part[i] == 0);
  expect(only_four, "fill with `only`: writes those blobs and nothing else");
  MlpWeights saved = m.w.layers[2].experts[1];
  m.w.layers[2].experts[1].up.cols = 64;
  expect_throws([&] { fill_expert_blobs(m.config, m.w, layers, L8, full.data()); }, "layer 2 expert 1 up_proj is [64, 64], expected [64, 128]", "fill: a wrong shape is named");
  m.w.layers[2].experts[1] = saved;
}

void test_quantized_file() {
  std::printf("quantized experts file\n");
  Lcg rng(22);
  TinyModel m(3, rng);
  const std::vector<int> layers = {1, 2};
  const ExpertLayout L = expert_layout(ExpertDType::INT4, 128, 64, 32);
  const size_t n = 6, bytes = expert_blobs_bytes(m.config, layers, L);
  std::vector<uint8_t> fresh(bytes);
  fill_expert_blobs(m.config, m.w, layers, L, fresh.data());
  char tmpl[] = "/tmp/moe-qfile-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  QuantizedFileSpec spec;
  spec.path = dir + "/experts.safetensors";
  spec.header.assign(4096, ' ');  // this side treats the header as opaque bytes (the TypeScript side writes the JSON)
  spec.header[0] = 0x01;
  const auto load = [&](QuantizedFileSpec::Mode mode, std::vector<uint8_t>& out, double& qs) {
    QuantizedFileSpec s = spec;
    s.mode = mode;
    out.assign(bytes, 0);
    return fill_expert_blobs_with_file(m.config, m.w, layers, L, out.data(), s, qs);
  };
  std::vector<uint8_t> got;
  double qs = -1;
  QuantizedFileResult r = load(QuantizedFileSpec::Mode::Write, got, qs);
  std::vector<uint8_t> file = read_all(spec.path);
  expect(r.written && !r.read && r.warning.empty() && got == fresh, "write: the blobs quantized, the file written, no warning");
  expect(file.size() == 4096 + n * L.bytes + n * 8, "write: header + blobs + one u64 checksum per blob");
  bool layout_ok = std::equal(spec.header.begin(), spec.header.end(), file.begin()) &&
                   std::equal(fresh.begin(), fresh.end(), file.begin() + 4096);
  for (size_t i = 0; i < n && layout_ok; ++i) {
    uint64_t c;
    std::memcpy(&c, file.data() + 4096 + n * L.bytes + i * 8, 8);
    layout_ok = c == blob_checksum(fresh.data() + i * L.bytes, L.bytes);
  }
  expect(layout_ok, "write: the header bytes as given, the blobs in order, their checksums last");
  expect(access((spec.path + ".partial-" + std::to_string(getpid())).c_str(), F_OK) != 0, "write: no partial file left");

  r = load(QuantizedFileSpec::Mode::Read, got, qs);
  expect(r.read && !r.written && r.rebuilt == 0 && qs == 0 && r.warning.empty() && got == fresh, "read: the same blobs, nothing quantized");

  // a corrupted blob (expert 2 of layer 2 = blob 5): only it is quantized again, and the file is rewritten
  file[4096 + 5 * L.bytes + 17] ^= 0x40;
  write_all(spec.path, file);
  r = load(QuantizedFileSpec::Mode::Read, got, qs);
  expect(r.read && r.rebuilt == 1 && r.written && got == fresh, "corrupt blob: re-quantized, the file rewritten");
  expect(r.warning.find("1 of 6 experts fail their checksum (first: layer 2 expert 2)") != std::string::npos, "corrupt blob: the warning names the expert: " + r.warning);
  r = load(QuantizedFileSpec::Mode::Read, got, qs);
  expect(r.read && r.rebuilt == 0 && r.warning.empty() && got == fresh, "corrupt blob: the rewritten file reads clean");

  // truncated after the TypeScript side checked it: not used, rebuilt whole
  file = read_all(spec.path);
  file.resize(file.size() - 8);
  write_all(spec.path, file);
  r = load(QuantizedFileSpec::Mode::Read, got, qs);
  expect(!r.read && r.written && got == fresh && r.warning.find("truncated or changed since it was checked") != std::string::npos, "truncated: rebuilt, rewritten: " + r.warning);
  expect(read_all(spec.path).size() == 4096 + n * L.bytes + n * 8, "truncated: the rewritten file is whole");

  // another header (the check raced a rewrite): not used
  file = read_all(spec.path);
  file[100] = 'x';
  write_all(spec.path, file);
  r = load(QuantizedFileSpec::Mode::Read, got, qs);
  expect(!r.read && r.written && got == fresh && r.warning.find("header changed") != std::string::npos, "changed header: rebuilt: " + r.warning);

  // a folder that cannot take the file: a warning, the blobs still right
  QuantizedFileSpec bad = spec;
  bad.path = dir + "/missing/experts.safetensors";
  bad.mode = QuantizedFileSpec::Mode::Write;
  got.assign(bytes, 0);
  r = fill_expert_blobs_with_file(m.config, m.w, layers, L, got.data(), bad, qs);
  expect(!r.written && got == fresh && r.warning.find("not written") != std::string::npos, "unwritable: a warning, the load goes on: " + r.warning);

  const ExpertLayout B = expert_layout(ExpertDType::BF16, 128, 64);
  std::vector<uint8_t> bf(expert_blobs_bytes(m.config, layers, B));
  expect_throws([&] { fill_expert_blobs_with_file(m.config, m.w, layers, B, bf.data(), spec, qs); }, "only for int8 / int4", "bf16 has no quantized file");
  std::remove(spec.path.c_str());
  rmdir(dir.c_str());
}

}  // namespace

int main() {
  test_layout();
  test_f16();
  check_error_bound(ExpertDType::BF16, 128, 64, 64);
  check_error_bound(ExpertDType::INT8, 128, 64, 64);
  check_error_bound(ExpertDType::INT4, 128, 64, 64);
  check_error_bound(ExpertDType::INT4, 256, 128, 128);
  check_error_bound(ExpertDType::INT4, 128, 64, 64, Int4Fit::Nearest);
  test_int4_search();
  test_linear_rows_q();
  test_expert_ffn_q();
  test_executor_q();
  test_fidelity();
  test_blob_checksum();
  test_expert_blobs();
  test_quantized_file();
  if (failures()) {
    std::printf("%d check(s) FAILED\n", failures());
    return 1;
  }
  std::printf("all quant tests passed\n");
  return 0;
}
