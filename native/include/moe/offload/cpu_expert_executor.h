#pragma once
// Routed experts computed on the CPU (issue 12, Fiddler's idea): `workers` experts at once, each on its own
// pool of `threads_per_worker` threads (calibrate chooses that shape by measurement). start() hands a list
// of jobs to the workers and returns at once, so the caller keeps the GPU busy meanwhile; wait() blocks
// until every job is done and rethrows the first job's exception (a throwing job never hangs the caller).
// Jobs are taken in list order by whichever worker is free first: list scheduling, as the miss rule
// (miss_policy.h) assumes. Between batches the workers (and their pools' threads) poll for `spin_us`
// before they sleep (thread_pool.h says why), and wait() polls as long for the batch's end before it
// sleeps: a caller woken from a condition variable on the H200 host (a VM) returns a fraction of a
// millisecond late, once per MoE layer. Nothing allocates per job.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "moe/kernels.h"
#include "moe/offload/miss_policy.h"
#include "moe/quant/expert_format.h"
#include "moe/thread_pool.h"
#include "moe/weights.h"

namespace moe::offload {

struct CpuExpertJob {
  MlpWeights weights;         // the expert's gate/up/down (bf16 views of the pinned host copy)
  const float* x = nullptr;   // [rows, hidden] fp32 inputs
  int rows = 0;
  float* y = nullptr;         // [rows, hidden] outputs, row r multiplied by row_scale[r]
  const float* row_scale = nullptr;  // [rows] routing weights; nullptr: 1
  double ms = 0;              // measured wall time of the job (filled by the worker)
  // Quantized experts (issue 13): when blob is set, the job's expert is that blob (layout says its
  // dtype and offsets; hidden / d_ff must be the executor's) and runs quant::expert_ffn_q_forward;
  // `weights` is then unused. Both must stay alive until wait() returns.
  const uint8_t* blob = nullptr;
  const quant::ExpertLayout* layout = nullptr;
};

class CpuExpertExecutor {
 public:
  // rounding (miss_policy.h): how bf16 jobs are computed; quantized jobs always run the ISA's q kernels.
  CpuExpertExecutor(int workers, int threads_per_worker, LinearIsa isa, int max_rows, int hidden, int d_ff, int spin_us = 0,
                    CpuExpertRounding rounding = CpuExpertRounding::Fast);
  ~CpuExpertExecutor();
  CpuExpertExecutor(const CpuExpertExecutor&) = delete;
  CpuExpertExecutor& operator=(const CpuExpertExecutor&) = delete;

  int workers() const { return static_cast<int>(threads_.size()); }
  int threads_per_worker() const { return threads_per_worker_; }
  LinearIsa isa() const { return isa_; }
  CpuExpertRounding rounding() const { return rounding_; }
  // The jobs must stay alive and unchanged until wait() returns. One batch at a time.
  void start(std::vector<CpuExpertJob>* jobs);
  void wait();
  // Waits for a batch a failed forward left running, dropping its error (the forward already failed).
  void drain() noexcept;
  // The last batch's hand-off latencies (ms), the part of a layer's CPU time that no job's own clock
  // sees: start() to the first job's start (a worker waking), and the later of the last job's end and
  // wait()'s entry to wait()'s return (the caller waking).
  double last_start_latency_ms() const { return start_latency_ms_; }
  double last_join_latency_ms() const { return join_latency_ms_; }

 private:
  void worker_loop(int w);

  int threads_per_worker_;
  LinearIsa isa_;
  CpuExpertRounding rounding_;
  int max_rows_;
  int hidden_, d_ff_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<ThreadPool>> pools_;
  std::vector<FfnScratch> scratch_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<CpuExpertJob>* jobs_ = nullptr;
  size_t next_ = 0;
  int running_ = 0;       // workers inside the current batch
  uint64_t batch_ = 0;
  std::atomic<uint64_t> published_{0};  // batch_, readable without the lock
  std::atomic<uint64_t> finished_{0};   // the last batch whose jobs are all done, readable without the lock
  std::chrono::steady_clock::time_point started_at_, done_at_;  // guarded by mutex_
  double start_latency_ms_ = 0, join_latency_ms_ = 0;
  int spin_us_ = 0;
  bool stopping_ = false;
  bool active_ = false;   // a batch was started and not yet waited for
  std::exception_ptr error_;
};

}  // namespace moe::offload
