#pragma once
// A tiny test harness for the kernel tests: every comparison uses atol + rtol * |ref| and, on
// failure, prints the first mismatches and the largest difference.
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace moe_test {

inline int& failures() {
  static int n = 0;
  return n;
}

inline bool close_all(const std::string& what, const float* got, const double* ref, size_t n, double atol, double rtol) {
  size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < n; ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double tol = atol + rtol * std::fabs(ref[i]);
    if (!(diff <= tol)) {
      if (bad < 5) std::printf("    %s: [%zu] got %.9g, want %.9g (diff %.3g > tol %.3g)\n", what.c_str(), i, got[i], ref[i], diff, tol);
      ++bad;
    }
    if (diff - tol > worst_excess) {
      worst_excess = diff - tol;
      worst = i;
    }
  }
  if (bad) {
    std::printf("  FAIL %s: %zu of %zu values out of tolerance (atol %.1g, rtol %.1g); worst at [%zu]: got %.9g want %.9g\n",
                what.c_str(), bad, n, atol, rtol, worst, got[worst], ref[worst]);
    ++failures();
    return false;
  }
  return true;
}

inline void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("  FAIL %s\n", what.c_str());
    ++failures();
  }
}

inline void expect_throws(const std::function<void()>& fn, const std::string& needle, const std::string& what) {
  try {
    fn();
  } catch (const std::exception& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      std::printf("  FAIL %s: message '%s' lacks '%s'\n", what.c_str(), e.what(), needle.c_str());
      ++failures();
    }
    return;
  }
  std::printf("  FAIL %s: no exception\n", what.c_str());
  ++failures();
}

// Deterministic pseudo-random floats in [-1, 1).
struct Lcg {
  uint64_t s;
  explicit Lcg(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(s >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  }
};

}  // namespace moe_test
