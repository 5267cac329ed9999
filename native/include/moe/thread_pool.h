#pragma once
// A fixed pool of worker threads for data-parallel loops. The calling thread takes part, so a pool
// of n threads has n - 1 workers. Workers sleep on a condition variable between jobs (no spinning).
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
  explicit ThreadPool(int threads);
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
