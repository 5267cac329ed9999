#pragma once
// A fixed pool of worker threads for data-parallel loops. The calling thread takes part, so a pool
// of n threads has n - 1 workers. Workers sleep on a condition variable between jobs; with spin_us > 0
// they first poll for the next job for that long (bounded: then they sleep). The CPU expert executor
// uses that: its jobs come every layer (~1 ms apart at batch 1) and a sleeping thread's wake-up cost
// (measured on the H200 host, a VM: an expert took 0.83 ms instead of 0.43) would otherwise dominate.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe {

class ThreadPool {
 public:
  explicit ThreadPool(int threads, int spin_us = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), chunks of at least `grain` items,
  // spread over the threads; returns when all are done. The first exception thrown is rethrown.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;
  int spin_us_ = 0;
  std::atomic<uint64_t> published_{0};  // generation_, readable without the lock (spinning)
  std::atomic<int> pending_{0};         // busy_, readable without the lock
  bool stopping_ = false;
  // The current job.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 0;
  int64_t next_chunk_ = 0;  // guarded by mutex_
  int64_t n_chunks_ = 0;
  int busy_ = 0;
  std::exception_ptr error_;
};

}  // namespace moe
