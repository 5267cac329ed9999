#pragma once
// What the CPU we run on can do, read with cpuid/xgetbv at run time. SIMD kernels are compiled
// with per-file target flags and chosen from these, so one binary runs everywhere.
#include <string>

namespace moe {

struct CpuFeatures {
  bool avx2 = false;        // with FMA
  bool avx512f = false;     // with AVX512BW, and the OS saves zmm state
  bool avx512bf16 = false;  // _mm512_dpbf16_ps
  bool amx_bf16 = false;    // reported only; no AMX kernel yet
  std::string describe() const;
};

const CpuFeatures& cpu_features();

}  // namespace moe
