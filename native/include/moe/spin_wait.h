#pragma once
// Bounded polling before a thread sleeps on a condition variable (thread_pool.h says why the CPU expert
// pool wants it). Shared by ThreadPool and the CPU expert executor.
#include <chrono>
#include <thread>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace moe {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls `ready` for at most `us` microseconds; true as soon as it holds (us <= 0: one look).
template <typename F>
bool spin_until(int us, F ready) {
  if (us <= 0) return ready();
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (int i = 0;; ++i) {
    if (ready()) return true;
    cpu_relax();
    if ((i & 255) == 255 && std::chrono::steady_clock::now() >= end) return ready();
  }
}

}  // namespace moe
