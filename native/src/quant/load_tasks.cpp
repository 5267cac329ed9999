#include "load_tasks.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "moe/error.h"

namespace moe::quant::detail {

int load_threads() { return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u)); }

void run_load_tasks(size_t n, const std::function<size_t(size_t)>& task, size_t total_bytes, const std::string& label) {
  if (n == 0) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0}, done_bytes{0}, finished{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;
  const int threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(load_threads()), n));
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&]() {
      for (;;) {
        const size_t i = next.fetch_add(1);
        if (i >= n || failed.load()) break;
        try {
          done_bytes.fetch_add(task(i));
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (error.empty()) error = e.what();
          failed.store(true);
        }
        finished.fetch_add(1);
      }
    });
  }
  // A full-size model's pass takes seconds: a line every 10% (the main thread only watches).
  int reported = 0;
  while (finished.load() < n && !failed.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (label.empty() || total_bytes == 0) continue;
    const size_t done = done_bytes.load();
    const int pct = static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total_bytes));
    if (pct / 10 > reported / 10 && pct < 100) {
      reported = pct;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "moe: %s: %d%% (%.1f of %.1f GB, %.1f s)\n", label.c_str(), pct, 1e-9 * static_cast<double>(done),
                   1e-9 * static_cast<double>(total_bytes), s);
    }
  }
  for (std::thread& t : pool) t.join();
  if (!error.empty()) throw Error(error);
}

}  // namespace moe::quant::detail
