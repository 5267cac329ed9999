// The matmul entry point: picks the row kernel for the weight dtype and the CPU, and splits the
// output rows over the thread pool.
#include <algorithm>
#include <vector>

#include "linear_simd.h"
#include "moe/cpu_features.h"
#include "moe/error.h"
#include "moe/kernels.h"

namespace moe {

const char* linear_isa_name(LinearIsa isa) {
  switch (isa) {
    case LinearIsa::Auto: return "auto";
    case LinearIsa::Scalar: return "scalar";
    case LinearIsa::Avx2: return "avx2";
    case LinearIsa::Avx512: return "avx512";
    default: return "avx512bf16";
  }
}

bool isa_supported(LinearIsa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case LinearIsa::Auto:
    case LinearIsa::Scalar: return true;
    case LinearIsa::Avx2: return f.avx2;
    case LinearIsa::Avx512: return f.avx512f;
    default: return f.avx512bf16;
  }
}

LinearIsa best_exact_isa() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f ? LinearIsa::Avx512 : f.avx2 ? LinearIsa::Avx2 : LinearIsa::Scalar;
}

namespace {

LinearIsa resolve(LinearIsa isa) {
  if (isa == LinearIsa::Auto) return best_exact_isa();
  if (!isa_supported(isa)) throw Error(std::string("kernel ") + linear_isa_name(isa) + " is not supported by this CPU");
  return isa;
}

void linear_rows_generic(const float* x, int T, const Matrix& W, int o0, int o1, float* y) {
  std::vector<float> row(static_cast<size_t>(W.cols));
  for (int o = o0; o < o1; ++o) {
    matrix_row_to_f32(W, o, row.data());
    for (int t = 0; t < T; ++t) {
      const float* xr = x + static_cast<size_t>(t) * W.cols;
      float s = 0.f;
      for (int k = 0; k < W.cols; ++k) s += xr[k] * row[k];
      y[static_cast<size_t>(t) * W.rows + o] = s;
    }
  }
}

}  // namespace

void linear_rows(const float* x, const uint16_t* xb, int T, const Matrix& W, int o0, int o1, float* y, LinearIsa isa) {
  if (W.dtype != DType::BF16) {
    linear_rows_generic(x, T, W, o0, o1, y);
    return;
  }
  const uint16_t* w = static_cast<const uint16_t*>(W.data);
  switch (resolve(isa)) {
    case LinearIsa::Avx512: linear_rows_bf16_avx512(x, T, W.cols, w, o0, o1, y, W.rows); break;
    case LinearIsa::Avx2: linear_rows_bf16_avx2(x, T, W.cols, w, o0, o1, y, W.rows); break;
    case LinearIsa::Avx512Bf16:
      if (!xb) throw Error("linear_rows: the avx512bf16 kernel needs bf16 activations");
      linear_rows_bf16_dpbf16(xb, T, W.cols, w, o0, o1, y, W.rows);
      break;
    default: linear_rows_bf16_scalar(x, T, W.cols, w, o0, o1, y, W.rows);
  }
}

void linear(const float* x, int T, const Matrix& W, float* y, ThreadPool* pool, LinearIsa isa) {
  if (T <= 0) return;
  isa = resolve(isa);
  std::vector<uint16_t> xb;
  if (isa == LinearIsa::Avx512Bf16 && W.dtype == DType::BF16) {
    xb.resize(static_cast<size_t>(T) * W.cols);
    for (size_t i = 0; i < xb.size(); ++i) xb[i] = f32_to_bf16(x[i]);
  }
  const uint16_t* xbp = xb.empty() ? nullptr : xb.data();
  // Enough rows per chunk that a chunk streams at least ~64 KB of weights.
  const int64_t row_bytes = static_cast<int64_t>(W.cols) * dtype_size(W.dtype);
  const int64_t grain = std::max<int64_t>(1, (64 * 1024) / std::max<int64_t>(1, row_bytes * std::max(1, T / 4)));
  auto body = [&](int64_t o0, int64_t o1) {
    linear_rows(x, xbp, T, W, static_cast<int>(o0), static_cast<int>(o1), y, isa);
  };
  if (pool) pool->parallel_for(W.rows, grain, body);
  else body(0, W.rows);
}

}  // namespace moe
