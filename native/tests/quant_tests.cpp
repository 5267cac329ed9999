// Quantized expert formats (issue 13): the layout arithmetic, fp16 rounding, and the quantizer's
// error bounds against the bf16 weights it came from. The kernels' checks (CPU here, GPU in
// tests/cuda) compare against dequantize_row, which these tests pin to the format's definition.
// Run: moe_quant_tests (exit status 0 = all passed)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "check.h"
#include "moe/error.h"
#include "moe/quant/expert_format.h"
#include "moe/quant/quantize.h"

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
void check_error_bound(ExpertDType dtype, int hidden, int d_ff, int group) {
  Lcg rng(7 + static_cast<int>(dtype));
  const ExpertLayout L = expert_layout(dtype, hidden, d_ff, group);
  Bf16Matrix gate(d_ff, hidden, rng, 0.05f), up(d_ff, hidden, rng, 0.05f), down(hidden, d_ff, rng, 0.05f);
  // A constant group and a zero row: the edge cases of the scale.
  for (int c = 0; c < group && c < hidden; ++c) gate.data[static_cast<size_t>(c)] = f32_to_bf16(0.03f);
  for (int c = 0; c < hidden; ++c) up.data[static_cast<size_t>(c)] = 0;
  std::vector<uint8_t> blob(L.bytes + 64, 0xab);
  quantize_expert(L, gate.view, up.view, down.view, blob.data());
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
        double step = 0;  // the format's quantization step for this element
        if (dtype == ExpertDType::INT8) {
          step = reinterpret_cast<const float*>(blob.data() + M.scale)[r];
        } else if (dtype == ExpertDType::INT4) {
          step = f16_to_f32(reinterpret_cast<const uint16_t*>(blob.data() + M.scale)[static_cast<size_t>(r) * (M.cols / group) + c / group]);
        }
        // Half a step, plus the fp16 rounding of the zero point (up to 15 * 2^-11 steps), plus float noise.
        const double tol = dtype == ExpertDType::BF16 ? 0.0 : std::fabs(step) * (0.5 + 15.0 / 2048) + 1e-7;
        const double err = std::fabs(static_cast<double>(row[static_cast<size_t>(c)]) - want[static_cast<size_t>(c)]);
        worst = std::max(worst, err);
        if (err > tol) ++bad;
      }
    }
  }
  expect(bad == 0, std::string(expert_dtype_name(dtype)) + ": every weight within half a quantization step (worst " + std::to_string(worst) + ")");
  // The zero row comes back exactly; a constant group (int4: one group's scale) to fp16 precision.
  std::vector<float> row(static_cast<size_t>(hidden));
  dequantize_row(L, blob.data(), Part::Up, 0, row.data());
  bool zeros = true;
  for (float v : row) zeros = zeros && v == 0.f;
  expect(zeros, std::string(expert_dtype_name(dtype)) + ": a zero row dequantizes to zeros");
  dequantize_row(L, blob.data(), Part::Gate, 0, row.data());
  if (dtype != ExpertDType::INT8) expect(std::fabs(row[0] - bf16_to_f32(f32_to_bf16(0.03f))) < 2e-5, std::string(expert_dtype_name(dtype)) + ": a constant group keeps its value");
}

}  // namespace

int main() {
  test_layout();
  test_f16();
  check_error_bound(ExpertDType::BF16, 128, 64, 64);
  check_error_bound(ExpertDType::INT8, 128, 64, 64);
  check_error_bound(ExpertDType::INT4, 128, 64, 64);
  check_error_bound(ExpertDType::INT4, 256, 128, 128);
  if (failures()) {
    std::printf("%d check(s) FAILED\n", failures());
    return 1;
  }
  std::printf("all quant tests passed\n");
  return 0;
}
