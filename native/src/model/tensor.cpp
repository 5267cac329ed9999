#include "moe/tensor.h"

#include <cmath>

namespace moe {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    default: return "F32";
  }
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float value;
  if (exp == 0) value = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) value = mant ? NAN : INFINITY;
  else value = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  return sign ? -value : value;
}

void matrix_row_to_f32(const Matrix& m, int r, float* out) {
  const size_t base = static_cast<size_t>(r) * m.cols;
  switch (m.dtype) {
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(m.data) + base;
      for (int c = 0; c < m.cols; ++c) out[c] = bf16_to_f32(p[c]);
      break;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(m.data) + base;
      for (int c = 0; c < m.cols; ++c) out[c] = f16_to_f32(p[c]);
      break;
    }
    default: {
      const float* p = static_cast<const float*>(m.data) + base;
      for (int c = 0; c < m.cols; ++c) out[c] = p[c];
    }
  }
}

}  // namespace moe
