#include "moe/offload/cpu_expert_executor.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "moe/error.h"
#include "moe/quant/expert_kernels.h"
#include "moe/spin_wait.h"

namespace moe::offload {

CpuExpertExecutor::CpuExpertExecutor(int workers, int threads_per_worker, LinearIsa isa, int max_rows, int hidden, int d_ff, int spin_us,
                                     CpuExpertRounding rounding)
    : threads_per_worker_(threads_per_worker), isa_(isa), rounding_(rounding), max_rows_(max_rows), hidden_(hidden), d_ff_(d_ff), spin_us_(std::max(0, spin_us)) {
  if (workers < 1 || threads_per_worker < 1) {
    throw Error("CPU experts: workers and threads per worker must be >= 1 (got " + std::to_string(workers) + " x " +
                std::to_string(threads_per_worker) + ")");
  }
  if (!isa_supported(isa)) throw Error(std::string("CPU experts: kernel ") + linear_isa_name(isa) + " is not supported by this CPU");
  scratch_.resize(static_cast<size_t>(workers));
  for (FfnScratch& s : scratch_) {  // sized once for the largest job: nothing grows per step
    s.h.resize(static_cast<size_t>(max_rows) * d_ff);
    s.up.resize(static_cast<size_t>(max_rows) * d_ff);
    s.xb.resize(static_cast<size_t>(max_rows) * hidden);
    s.hb.resize(static_cast<size_t>(max_rows) * d_ff);
    if (isa == LinearIsa::Avx512Bf16) s.xr.resize(static_cast<size_t>(max_rows) * hidden);  // quantized jobs' bf16 x
  }
  for (int w = 0; w < workers; ++w) pools_.push_back(std::make_unique<ThreadPool>(threads_per_worker, spin_us_));
  for (int w = 0; w < workers; ++w) threads_.emplace_back([this, w] { worker_loop(w); });
}

CpuExpertExecutor::~CpuExpertExecutor() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void CpuExpertExecutor::start(std::vector<CpuExpertJob>* jobs) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (active_) throw Error("CPU experts: start() while a batch is still running (internal error)");
  for (const CpuExpertJob& j : *jobs) {
    if (j.rows < 1 || j.rows > max_rows_) throw Error("CPU experts: a job of " + std::to_string(j.rows) + " rows (1.." + std::to_string(max_rows_) + ")");
    if (j.blob && (!j.layout || j.layout->hidden != hidden_ || j.layout->d_ff != d_ff_)) {
      throw Error("CPU experts: a quantized job needs a layout of hidden " + std::to_string(hidden_) + ", d_ff " + std::to_string(d_ff_));
    }
  }
  jobs_ = jobs;
  next_ = 0;
  started_at_ = std::chrono::steady_clock::now();
  start_latency_ms_ = 0;
  error_ = nullptr;
  running_ = workers();
  active_ = true;
  ++batch_;
  published_.store(batch_, std::memory_order_release);
  wake_.notify_all();
}

void CpuExpertExecutor::wait() {
  const auto entered = std::chrono::steady_clock::now();
  const uint64_t batch = published_.load(std::memory_order_acquire);
  spin_until(spin_us_, [&] { return finished_.load(std::memory_order_acquire) == batch; });
  std::unique_lock<std::mutex> lock(mutex_);
  if (!active_) return;
  done_.wait(lock, [this] { return running_ == 0; });
  join_latency_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - std::max(entered, done_at_)).count();
  active_ = false;
  jobs_ = nullptr;
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void CpuExpertExecutor::drain() noexcept {
  try {
    wait();
  } catch (...) {
  }
}

void CpuExpertExecutor::worker_loop(int w) {
  uint64_t seen = 0;
  ThreadPool* pool = pools_[static_cast<size_t>(w)].get();
  FfnScratch& scratch = scratch_[static_cast<size_t>(w)];
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (spin_us_ > 0 && batch_ == seen && !stopping_) {
      // Poll for the next batch a while before sleeping (bounded; see the header).
      lock.unlock();
      spin_until(spin_us_, [&] { return published_.load(std::memory_order_acquire) != seen; });
      lock.lock();
    }
    wake_.wait(lock, [&] { return stopping_ || batch_ != seen; });
    if (stopping_) return;
    seen = batch_;
    for (;;) {
      if (error_ || next_ >= jobs_->size()) break;  // after an error the rest are skipped: wait() rethrows it
      CpuExpertJob& job = (*jobs_)[next_++];
      if (next_ == 1) {  // the batch's first job
        start_latency_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_at_).count();
      }
      lock.unlock();
      try {
        const auto t0 = std::chrono::steady_clock::now();
        if (job.blob) quant::expert_ffn_q_forward(job.x, job.rows, *job.layout, job.blob, job.y, false, 1.f, pool, scratch, isa_);
        else if (rounding_ == CpuExpertRounding::GpuOrder) mlp_forward_gpu_order(job.x, job.rows, job.weights, job.y, false, 1.f, pool, scratch, gpu_order_vectorized());
        else mlp_forward(job.x, job.rows, job.weights, job.y, false, 1.f, pool, scratch, isa_);
        if (job.row_scale) {
          const int H = job.blob ? job.layout->hidden : job.weights.down.rows;
          for (int r = 0; r < job.rows; ++r) {
            float* y = job.y + static_cast<size_t>(r) * H;
            const float s = job.row_scale[r];
            for (int c = 0; c < H; ++c) y[c] *= s;
          }
        }
        job.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        lock.lock();
      } catch (...) {
        lock.lock();
        if (!error_) error_ = std::current_exception();
      }
    }
    if (--running_ == 0) {
      done_at_ = std::chrono::steady_clock::now();
      finished_.store(seen, std::memory_order_release);
      done_.notify_all();
    }
  }
}

}  // namespace moe::offload
