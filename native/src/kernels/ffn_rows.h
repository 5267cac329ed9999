#pragma once
// What the two CPU expert FFNs (mlp_forward for bf16 weights, quant::expert_ffn_q_forward for int8/int4
// blobs) share around their matmuls, so that a quantized expert differs from the bf16 one only in its weights.
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace moe::detail {

// Output rows per pool task in both FFN passes: fewer when there are more tokens (each row costs more).
inline int64_t ffn_grain(int T) { return std::max(1, 16 / std::max(1, T / 4)); }

// Down's output rows [o0, o1) of every token, computed into y (row stride H), made final in out:
// out = y when neither accumulating nor scaling (y is out then), out = scale * y, or out += scale * y.
inline void ffn_store_rows(const float* y, float* out, int T, int H, int64_t o0, int64_t o1, bool accumulate, float scale) {
  if (!accumulate && scale == 1.0f) return;
  for (int t = 0; t < T; ++t) {
    const float* yr = y + static_cast<size_t>(t) * H;
    float* orow = out + static_cast<size_t>(t) * H;
    for (int64_t o = o0; o < o1; ++o) orow[o] = accumulate ? orow[o] + scale * yr[o] : scale * yr[o];
  }
}

}  // namespace moe::detail
