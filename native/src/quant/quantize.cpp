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

void quantize_int4(const Matrix& m, const MatrixLayout& L, int group, uint8_t* blob) {
  uint8_t* q = blob + L.q;
  uint16_t* scale = reinterpret_cast<uint16_t*>(blob + L.scale);
  uint16_t* zero = reinterpret_cast<uint16_t*>(blob + L.zero);
  const int groups = L.cols / group;
  std::vector<float> row(static_cast<size_t>(L.cols));
  for (int r = 0; r < L.rows; ++r) {
    matrix_row_to_f32(m, r, row.data());
    for (int g = 0; g < groups; ++g) {
      const float* w = row.data() + static_cast<size_t>(g) * group;
      float lo = w[0], hi = w[0];
      for (int i = 1; i < group; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
      // Scale and zero are stored in fp16; q is computed from the stored (rounded) values so that the
      // dequantized weight is the nearest one the stored format can express.
      uint16_t s16 = f32_to_f16((hi - lo) / 15.f), z16 = 0;
      const bool spread = hi > lo && f16_to_f32(s16) > 0.f;
      if (spread) {
        z16 = f32_to_f16(-lo / f16_to_f32(s16));
      } else {
        // A (numerically) constant group c: scale c, zero 0, q 1 reproduces it (scale 0 for c = 0).
        s16 = f32_to_f16(0.5f * (lo + hi));
      }
      const float s = f16_to_f32(s16), z = f16_to_f32(z16);
      const size_t gi = static_cast<size_t>(r) * groups + g;
      scale[gi] = s16;
      zero[gi] = z16;
      for (int i = 0; i < group; ++i) {
        float v = 0.f;
        if (s != 0.f) v = spread ? std::nearbyint(w[i] / s + z) : 1.f;
        const uint8_t qi = static_cast<uint8_t>(std::clamp(v, 0.f, 15.f));
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

const MatrixLayout& part_layout(const ExpertLayout& layout, Part part) {
  switch (part) {
    case Part::Gate: return layout.gate;
    case Part::Up: return layout.up;
    default: return layout.down;
  }
}

void quantize_expert(const ExpertLayout& layout, const Matrix& gate, const Matrix& up, const Matrix& down, uint8_t* out) {
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
      default: quantize_int4(*parts[p], L, layout.group, out); break;
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
