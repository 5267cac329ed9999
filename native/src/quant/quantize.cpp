#include "moe/quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "moe/error.h"

namespace moe::quant {
namespace {

void check_shape(const Matrix& m, const MatrixLayout& L, const char* what) {
  if (m.empty() || m.rows != L.rows || m.cols != L.cols) {
    throw Error(std::string("quantize: ") + what + " is [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + "], expected [" +
                std::to_string(L.rows) + ", " + std::to_string(L.cols) + "]");
  }
}

void quantize_bf16(const Matrix& m, const MatrixLayout& L, uint8_t* blob) {
  uint16_t* q = reinterpret_cast<uint16_t*>(blob + L.q);
  if (m.dtype == DType::BF16) {
    std::memcpy(q, m.data, static_cast<size_t>(L.rows) * L.cols * 2);
    return;
  }
  std::vector<float> row(static_cast<size_t>(L.cols));
  for (int r = 0; r < L.rows; ++r) {
    matrix_row_to_f32(m, r, row.data());
    for (int c = 0; c < L.cols; ++c) q[static_cast<size_t>(r) * L.cols + c] = f32_to_bf16(row[static_cast<size_t>(c)]);
  }
}

void quantize_int8(const Matrix& m, const MatrixLayout& L, uint8_t* blob) {
  int8_t* q = reinterpret_cast<int8_t*>(blob + L.q);
  float* scale = reinterpret_cast<float*>(blob + L.scale);
  std::vector<float> row(static_cast<size_t>(L.cols));
  for (int r = 0; r < L.rows; ++r) {
    matrix_row_to_f32(m, r, row.data());
    float amax = 0.f;
    for (float v : row) amax = std::max(amax, std::fabs(v));
    const float s = amax / 127.f;
    scale[r] = s;
    int8_t* qr = q + static_cast<size_t>(r) * L.cols;
    for (int c = 0; c < L.cols; ++c) {
      const float v = s > 0.f ? std::nearbyint(row[static_cast<size_t>(c)] / s) : 0.f;
      qr[c] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
    }
  }
}

// ---- int4: the scale and zero of one group ------------------------------------------------------
// Plain round-to-nearest over [min, max] (RTN) spends levels on the group's two extremes. The search
// below also tries narrower, shifted windows, refits each by least squares (w ~ s * q + m given the
// levels q it produced, twice), and keeps whichever stored (fp16) pair has the smallest squared error
// over the group, RTN included, so it is never worse than RTN (Int4Fit::Nearest stops at RTN). On
// Gaussian groups of 64 the relative RMS weight error is 8.97% for RTN, 8.30% for these 6 windows and
// 8.12% for a 30-window grid at 5x the cost (a numpy study; reports/bench/int4-fit-cpu-2026-12-05/ has
// the bench). llama.cpp's Q4_K quantizer (make_qkx2_quants) searches the same way. The blob's format
// (expert_format.h) does not change, only which scale and zero are written.
constexpr float kWindowWidths[] = {0.95f, 0.85f};        // of the group's half-range (max - min) / 2
constexpr float kWindowShifts[] = {-0.08f, 0.f, 0.08f};  // of the same half-range
constexpr int kRefits = 2;

// The search's inner loops use GCC/Clang vector extensions (4 floats, any target: SSE2 on x86-64, NEON on
// ARM), so they are fast without per-ISA files and sum in one fixed order on every machine.
typedef float f4 __attribute__((vector_size(16)));

inline f4 load4(const float* p) {
  f4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline f4 splat4(float x) { return f4{x, x, x, x}; }
inline double sum4(f4 v) { return static_cast<double>(v[0]) + v[1] + v[2] + v[3]; }

// Nearest integer, ties to even, as std::nearbyint in the default rounding mode for |x| < 2^22 (larger
// values are clamped to [0, 15] right after, where the lost precision does not matter); written out so
// that no libm call is made per weight.
inline float round_even(float x) { return (x + 12582912.f) - 12582912.f; }
inline f4 round_even(f4 x) { return (x + splat4(12582912.f)) - splat4(12582912.f); }
inline float level(float x) {
  const float r = round_even(x);
  const float below = r < 15.f ? r : 15.f;
  return below > 0.f ? below : 0.f;
}
inline f4 level(f4 x) {
  const f4 r = round_even(x), top = splat4(15.f), bottom = splat4(0.f);
  const f4 below = r < top ? r : top;
  return below > bottom ? below : bottom;
}

// The level the blob stores for w under the stored (s, z), given inv = 1 / s: nearest, clamped to [0, 15]
// (the product with the reciprocal instead of a division per weight: it can differ from w / s by an ulp,
// which moves a weight lying within ~1e-7 steps of a half-way point to the other, equally near level).
inline float stored_level(float w, float inv, float z) { return level(w * inv + z); }

// Squared error of the group under the stored pair (what dequantize_row will give back).
double stored_error(const float* w, int n, float s, float z) {
  const float inv = 1.f / s;
  const f4 vinv = splat4(inv), vz = splat4(z), vs = splat4(s);
  f4 acc = splat4(0.f);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const f4 x = load4(w + i);
    const f4 d = (level(x * vinv + vz) - vz) * vs - x;
    acc += d * d;
  }
  double sum = sum4(acc);
  for (; i < n; ++i) {
    const float d = (stored_level(w[i], inv, z) - z) * s - w[i];
    sum += static_cast<double>(d) * d;
  }
  return sum;
}

// One least-squares refit: the levels of w in the window (lo, step), then (step, lo) minimising
// sum (step * q + lo - w)^2 over those levels. False when the levels do not determine a fit (all equal)
// or the fit is not a positive finite step.
bool refit(const float* w, int n, double sum_w, float& lo, float& step) {
  const float inv = 1.f / step;
  const f4 vinv = splat4(inv), vlo = splat4(lo);
  f4 sq = splat4(0.f), sqq = sq, sqw = sq;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const f4 x = load4(w + i);
    const f4 q = level((x - vlo) * vinv);
    sq += q;
    sqq += q * q;
    sqw += q * x;
  }
  double q1 = sum4(sq), q2 = sum4(sqq), qw = sum4(sqw);
  for (; i < n; ++i) {
    const float q = level((w[i] - lo) * inv);
    q1 += q, q2 += static_cast<double>(q) * q, qw += static_cast<double>(q) * w[i];
  }
  const double det = n * q2 - q1 * q1;
  if (!(det > 0)) return false;
  const double s = (n * qw - q1 * sum_w) / det;
  if (!(s > 0) || !std::isfinite(s)) return false;
  step = static_cast<float>(s);
  lo = static_cast<float>((sum_w - s * q1) / n);
  return true;
}

struct GroupPair {
  uint16_t s16 = 0, z16 = 0;
  bool constant = false;  // every weight equal: q 1 (0 when the value is 0), the value in the scale
};

// The stored (fp16) scale and zero of one group of n weights (see the comment above).
GroupPair int4_group_pair(const float* w, int n, Int4Fit fit) {
  float lo = w[0], hi = w[0];
  for (int i = 1; i < n; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
  // RTN: q is computed from the stored (rounded) values, so the dequantized weight is the nearest one the
  // stored format can express.
  GroupPair best;
  best.s16 = f32_to_f16((hi - lo) / 15.f);
  if (!(hi > lo) || !(f16_to_f32(best.s16) > 0.f)) {
    // A (numerically) constant group c: scale c, zero 0, q 1 reproduces it (scale 0 for c = 0).
    best.s16 = f32_to_f16(0.5f * (lo + hi));
    best.z16 = 0;
    best.constant = true;
    return best;
  }
  best.z16 = f32_to_f16(-lo / f16_to_f32(best.s16));
  if (fit == Int4Fit::Nearest) return best;
  double best_err = stored_error(w, n, f16_to_f32(best.s16), f16_to_f32(best.z16));
  double sum_w = 0;
  for (int i = 0; i < n; ++i) sum_w += w[i];
  const float centre = 0.5f * (lo + hi), half = 0.5f * (hi - lo);
  for (float width : kWindowWidths) {
    for (float shift : kWindowShifts) {
      float wlo = centre - width * half + shift * half, step = 2.f * width * half / 15.f;
      bool ok = true;
      for (int k = 0; k < kRefits && ok; ++k) ok = refit(w, n, sum_w, wlo, step);
      if (!ok) continue;
      const uint16_t s16 = f32_to_f16(step);
      const float s = f16_to_f32(s16);
      if (!(s > 0.f) || !std::isfinite(s)) continue;
      const uint16_t z16 = f32_to_f16(-wlo / s);
      const float z = f16_to_f32(z16);
      if (!std::isfinite(z)) continue;
      const double err = stored_error(w, n, s, z);
      if (err < best_err) best_err = err, best.s16 = s16, best.z16 = z16;
    }
  }
  return best;
}

void quantize_int4(const Matrix& m, const MatrixLayout& L, int group, Int4Fit fit, uint8_t* blob) {
  uint8_t* q = blob + L.q;
  uint16_t* scale = reinterpret_cast<uint16_t*>(blob + L.scale);
  uint16_t* zero = reinterpret_cast<uint16_t*>(blob + L.zero);
  const int groups = L.cols / group;
  std::vector<float> row(static_cast<size_t>(L.cols));
  for (int r = 0; r < L.rows; ++r) {
    matrix_row_to_f32(m, r, row.data());
    for (int g = 0; g < groups; ++g) {
      const float* w = row.data() + static_cast<size_t>(g) * group;
      const GroupPair pair = int4_group_pair(w, group, fit);
      const size_t gi = static_cast<size_t>(r) * groups + g;
      scale[gi] = pair.s16;
      zero[gi] = pair.z16;
      const float s = f16_to_f32(pair.s16), z = f16_to_f32(pair.z16), inv = pair.constant ? 0.f : 1.f / s;
      for (int i = 0; i < group; ++i) {
        const float v = pair.constant ? (s != 0.f ? 1.f : 0.f) : stored_level(w[i], inv, z);
        const uint8_t qi = static_cast<uint8_t>(v);
        const size_t idx = static_cast<size_t>(r) * L.cols + static_cast<size_t>(g) * group + i;
        uint8_t& byte = q[idx / 2];
        byte = (idx % 2 == 0) ? static_cast<uint8_t>((byte & 0xf0u) | qi) : static_cast<uint8_t>((byte & 0x0fu) | (qi << 4));
      }
    }
  }
}

}  // namespace

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (absx < 0x38800000u) {                                                // below the smallest normal half
    // Subnormal half: value / 2^-24, rounded to nearest even.
    float a;
    std::memcpy(&a, &absx, 4);
    const float m = a * 16777216.f;  // 2^24
    const uint32_t r = static_cast<uint32_t>(std::nearbyint(m));
    return static_cast<uint16_t>(sign | r);  // r may reach 0x400: the smallest normal, correctly encoded
  }
  // Normal: rebias the exponent, round the mantissa to 10 bits (nearest even).
  uint32_t h = ((absx >> 13) - ((127u - 15u) << 10));
  const uint32_t rest = absx & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

const char* quantizer_id(ExpertDType dtype) {
  switch (dtype) {
    case ExpertDType::INT8: return "int8-absmax-1";
    case ExpertDType::INT4: return "int4-window-search-1";  // 2026-12-05: the window search (before it, round-to-nearest)
    default: return "bf16";
  }
}

const MatrixLayout& part_layout(const ExpertLayout& layout, Part part) {
  switch (part) {
    case Part::Gate: return layout.gate;
    case Part::Up: return layout.up;
    default: return layout.down;
  }
}

void quantize_expert(const ExpertLayout& layout, const Matrix& gate, const Matrix& up, const Matrix& down, uint8_t* out, Int4Fit fit) {
  check_shape(gate, layout.gate, "gate_proj");
  check_shape(up, layout.up, "up_proj");
  check_shape(down, layout.down, "down_proj");
  std::memset(out, 0, layout.bytes);
  const Matrix* parts[3] = {&gate, &up, &down};
  for (int p = 0; p < 3; ++p) {
    const MatrixLayout& L = part_layout(layout, static_cast<Part>(p));
    switch (layout.dtype) {
      case ExpertDType::BF16: quantize_bf16(*parts[p], L, out); break;
      case ExpertDType::INT8: quantize_int8(*parts[p], L, out); break;
      default: quantize_int4(*parts[p], L, layout.group, fit, out); break;
    }
  }
}

void dequantize_row(const ExpertLayout& layout, const uint8_t* blob, Part part, int r, float* out) {
  const MatrixLayout& L = part_layout(layout, part);
  const size_t base = static_cast<size_t>(r) * L.cols;
  switch (layout.dtype) {
    case ExpertDType::BF16: {
      const uint16_t* q = reinterpret_cast<const uint16_t*>(blob + L.q) + base;
      for (int c = 0; c < L.cols; ++c) out[c] = bf16_to_f32(q[c]);
      break;
    }
    case ExpertDType::INT8: {
      const int8_t* q = reinterpret_cast<const int8_t*>(blob + L.q) + base;
      const float s = reinterpret_cast<const float*>(blob + L.scale)[r];
      for (int c = 0; c < L.cols; ++c) out[c] = static_cast<float>(q[c]) * s;
      break;
    }
    default: {
      const uint8_t* q = blob + L.q;
      const int groups = L.cols / layout.group;
      const uint16_t* scale = reinterpret_cast<const uint16_t*>(blob + L.scale) + static_cast<size_t>(r) * groups;
      const uint16_t* zero = reinterpret_cast<const uint16_t*>(blob + L.zero) + static_cast<size_t>(r) * groups;
      for (int c = 0; c < L.cols; ++c) {
        const size_t idx = base + static_cast<size_t>(c);
        const int qi = (idx % 2 == 0) ? (q[idx / 2] & 0x0f) : (q[idx / 2] >> 4);
        const int g = c / layout.group;
        out[c] = (static_cast<float>(qi) - f16_to_f32(zero[g])) * f16_to_f32(scale[g]);
      }
    }
  }
}

}  // namespace moe::quant
