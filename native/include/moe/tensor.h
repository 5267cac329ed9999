#pragma once
// Read-only views of checkpoint tensors. The data lives in memory-mapped shard files (or, for the
// rare misaligned tensor, in a copy owned by the WeightStore); views never own memory.
#include <cstdint>
#include <cstring>

namespace moe {

enum class DType { BF16, F16, F32 };

inline int dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
const char* dtype_name(DType t);

// A row-major [rows, cols] matrix (a vector is rows = 1).
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::BF16;
  int rows = 0;
  int cols = 0;
  bool empty() const { return data == nullptr; }
};

inline float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does when casting float32 to bfloat16 (NaN kept quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);

// Element (r, c) of any dtype as fp32: for the slow generic paths and references.
inline float matrix_at(const Matrix& m, int r, int c) {
  size_t i = static_cast<size_t>(r) * m.cols + c;
  switch (m.dtype) {
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(m.data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(m.data)[i]);
    default: return static_cast<const float*>(m.data)[i];
  }
}

// Row r converted to fp32 into out[0..cols).
void matrix_row_to_f32(const Matrix& m, int r, float* out);

}  // namespace moe
