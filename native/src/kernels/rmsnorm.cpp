#include <cmath>

#include "moe/kernels.h"

namespace moe {

// As transformers' DeepseekV2RMSNorm in fp32: x * rsqrt(mean(x^2) + eps), then times the weight.
// The sum of squares is kept in double so the result does not depend on summation order.
void rmsnorm(const float* x, int T, int n, int stride, const float* w, float eps, float* out, int out_stride) {
  for (int t = 0; t < T; ++t) {
    const float* xr = x + static_cast<size_t>(t) * stride;
    float* yr = out + static_cast<size_t>(t) * out_stride;
    double ss = 0.0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float variance = static_cast<float>(ss / n);
    const float inv = 1.0f / std::sqrt(variance + eps);
    for (int i = 0; i < n; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

}  // namespace moe
