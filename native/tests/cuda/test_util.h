#pragma once
// Shared helpers of cuda_kernel_tests: device buffers, bf16 conversion, random inputs, poisoning,
// tolerance checks (atol + rtol * |ref|) with the first mismatches printed, and event timing.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda::test {

// ---- host bf16 (round to nearest even, as torch casts) -----------------------------------------
inline uint16_t f2bf_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}
inline float bf_bits2f(uint16_t v) {
  uint32_t b = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline float round_bf16(float f) { return bf_bits2f(f2bf_bits(f)); }

// A bf16 host tensor kept as its rounded float values (what the device sees) plus the raw bits.
struct HostBf16 {
  std::vector<float> f;
  std::vector<uint16_t> bits;
  explicit HostBf16(size_t n = 0) : f(n), bits(n) {}
  void set(size_t i, float v) { bits[i] = f2bf_bits(v); f[i] = bf_bits2f(bits[i]); }
  size_t size() const { return f.size(); }
};

// ---- device buffers ------------------------------------------------------------------------------
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) { if (n) CUDA_CHECK(cudaMalloc(&p_, n * sizeof(T))); }
  ~DeviceBuffer() { if (p_) cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = o.p_;
      n_ = o.n_;
      o.p_ = nullptr;
      o.n_ = 0;
    }
    return *this;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const T* src, size_t n) { CUDA_CHECK(cudaMemcpy(p_, src, n * sizeof(T), cudaMemcpyHostToDevice)); }
  void upload(const std::vector<T>& v) { upload(v.data(), v.size()); }
  std::vector<T> download(size_t n) const {
    std::vector<T> v(n);
    CUDA_CHECK(cudaMemcpy(v.data(), p_, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
  std::vector<T> download() const { return download(n_); }
  // 0xFF bytes: NaN for bf16 and fp32, -1 for integers: an element the kernel forgot stays visible.
  void poison() { CUDA_CHECK(cudaMemset(p_, 0xFF, n_ * sizeof(T))); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline DeviceBuffer<bf16> upload_bf16(const HostBf16& h) {
  DeviceBuffer<bf16> d(h.size());
  CUDA_CHECK(cudaMemcpy(d.get(), h.bits.data(), h.size() * 2, cudaMemcpyHostToDevice));
  return d;
}
inline std::vector<float> download_bf16(const DeviceBuffer<bf16>& d, size_t n) {
  std::vector<uint16_t> bits(n);
  CUDA_CHECK(cudaMemcpy(bits.data(), d.get(), n * 2, cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = bf_bits2f(bits[i]);
  return f;
}

// ---- random inputs (never zeros) ------------------------------------------------------------------
struct Random {
  std::mt19937_64 gen;  // for shuffles and integers
  uint64_t state;       // splitmix64 stream for the bulk floats (fast: tensors of ~10^8 values)
  explicit Random(uint64_t seed) : gen(seed), state(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-a, a], nudged away from exact 0.
  float uniform(float a) {
    const float v = (static_cast<float>(next() >> 40) * (1.f / 16777216.f) * 2.f - 1.f) * a;
    return v == 0.f ? a * 1e-3f : v;
  }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }
  HostBf16 bf16_tensor(size_t n, float a) {
    HostBf16 h(n);
    for (size_t i = 0; i < n; ++i) h.set(i, uniform(a));
    return h;
  }
  std::vector<float> f32_tensor(size_t n, float a) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(a);
    return v;
  }
};

// ---- comparison ---------------------------------------------------------------------------------------
struct CheckResult {
  std::string name;
  bool pass = true;
  double max_abs = 0, max_rel = 0;
  size_t checked = 0, bad = 0;
  double atol = 0, rtol = 0;
  std::string note;
};

// got[i] vs ref[i] (index i of `count`), pass when |got - ref| <= atol + rtol * |ref| and got is finite.
// Prints the first mismatches with their index.
inline void compare(CheckResult& r, const std::vector<float>& got, const std::vector<double>& ref, double atol,
                    double rtol, const char* what) {
  r.atol = std::max(r.atol, atol);
  r.rtol = std::max(r.rtol, rtol);
  const size_t n = std::min(got.size(), ref.size());
  if (got.size() != ref.size()) {
    r.pass = false;
    std::printf("    [%s] size mismatch: got %zu, ref %zu\n", what, got.size(), ref.size());
  }
  int shown = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], e = ref[i];
    const double d = std::fabs(g - e);
    const bool ok = std::isfinite(g) && d <= atol + rtol * std::fabs(e);
    if (std::isfinite(g)) {
      r.max_abs = std::max(r.max_abs, d);
      if (std::fabs(e) > atol) r.max_rel = std::max(r.max_rel, d / std::fabs(e));
    }
    ++r.checked;
    if (!ok) {
      ++r.bad;
      r.pass = false;
      if (shown < 8) {
        std::printf("    [%s] mismatch at %zu: got %.6g, ref %.6g, |diff| %.3g > %.3g\n", what, i, g, e, d,
                    atol + rtol * std::fabs(e));
        ++shown;
      }
    }
  }
}

inline void require(CheckResult& r, bool cond, const std::string& what) {
  ++r.checked;
  if (!cond) {
    ++r.bad;
    r.pass = false;
    std::printf("    [%s] FAILED\n", what.c_str());
  }
}

// ---- timing ---------------------------------------------------------------------------------------------
struct BenchResult {
  std::string name, shape;
  double median_us = 0, min_us = 0;
  double bytes = 0, flops = 0;  // the floor's counts: each input read once, each output written once
  std::string note;
};

// Median and min over `iters` event-timed runs after `warmup` runs on `stream`.
inline void time_it(BenchResult& b, cudaStream_t stream, const std::function<void()>& fn, int warmup = 10,
                    int iters = 50) {
  for (int i = 0; i < warmup; ++i) fn();
  CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<float> ms(iters);
  cudaEvent_t a, e;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < iters; ++i) {
    CUDA_CHECK(cudaEventRecord(a, stream));
    fn();
    CUDA_CHECK(cudaEventRecord(e, stream));
    CUDA_CHECK(cudaEventSynchronize(e));
    CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, e));
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(e));
  std::sort(ms.begin(), ms.end());
  b.median_us = ms[iters / 2] * 1e3;
  b.min_us = ms[0] * 1e3;
}

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  uint64_t seed = 0;
  bool quick = false;
  std::vector<CheckResult> checks;
  std::vector<BenchResult> benches;
};

// YaRN tables of DeepSeek-V2-Lite (factor 40, original 4096, beta_fast 32, beta_slow 1, mscale 0.707
// both): inv_freq as transformers' _compute_yarn_parameters forms it (fp32), and the softmax scale.
std::vector<float> yarn_inv_freq_v2_lite();
float mla_softmax_scale_v2_lite();

}  // namespace moe::cuda::test
