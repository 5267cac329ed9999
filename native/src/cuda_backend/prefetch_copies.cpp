#include "prefetch_copies.h"

#include <algorithm>
#include <string>

#include "cuda_check.h"
#include "moe/error.h"

namespace moe::cuda_backend {

PrefetchCopies::PrefetchCopies(int device, int moe_layers, int slots, size_t expert_bytes, int pieces, int max_in_flight, cudaStream_t copy)
    : device_(device), layers_(moe_layers), slots_(slots), pieces_(pieces), max_in_flight_(max_in_flight), expert_bytes_(expert_bytes), copy_(copy) {
  if (pieces < 1 || max_in_flight < 1) throw Error("prefetch: pieces and pieces in flight must be >= 1");
  const size_t n = static_cast<size_t>(moe_layers) * static_cast<size_t>(slots);
  track_.assign(n, Track{});
  slot_ev_.resize(n);
  for (cudaEvent_t& e : slot_ev_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  free_ev_.resize(static_cast<size_t>(max_in_flight) + 1);
  for (cudaEvent_t& e : free_ev_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  thread_ = std::thread([this] { run(); });
}

PrefetchCopies::~PrefetchCopies() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (copy_) cudaStreamSynchronize(copy_);
  for (cudaEvent_t e : slot_ev_) cudaEventDestroy(e);
  for (cudaEvent_t e : free_ev_) cudaEventDestroy(e);
  for (cudaEvent_t e : in_flight_) cudaEventDestroy(e);
}

void PrefetchCopies::check_error() const {
  if (!error_.empty()) throw Error("prefetch copies: " + error_);
}

std::deque<PrefetchCopies::Entry>::iterator PrefetchCopies::queued(size_t idx) {
  return std::find_if(queue_.begin(), queue_.end(), [&](const Entry& e) { return e.idx == idx; });
}

void PrefetchCopies::enqueue(int mi, int slot, int expert, const void* host_src, void* dst) {
  std::lock_guard<std::mutex> lk(mu_);
  check_error();
  const size_t idx = static_cast<size_t>(mi) * slots_ + static_cast<size_t>(slot);
  auto q = queued(idx);
  if (q != queue_.end()) {  // an older prefetch into the same slot, never used: dropped
    queue_.erase(q);
    ++counters_.cancelled;
  }
  track_[idx] = Track{expert, true, false, false, 0};
  queue_.push_back(Entry{idx, static_cast<const char*>(host_src), static_cast<char*>(dst), 0});
  ++counters_.orders;
  cv_.notify_one();
}

void PrefetchCopies::issue_piece(Entry& e) {
  const size_t b0 = piece_begin(e.next_piece), b1 = piece_begin(e.next_piece + 1);
  CUDA_CHECK(cudaMemcpyAsync(e.dst + b0, e.src + b0, b1 - b0, cudaMemcpyHostToDevice, copy_));
  ++e.next_piece;
  if (e.next_piece == pieces_) CUDA_CHECK(cudaEventRecord(slot_ev_[e.idx], copy_));
  cudaEvent_t ev = free_ev_.back();
  free_ev_.pop_back();
  CUDA_CHECK(cudaEventRecord(ev, copy_));
  in_flight_.push_back(ev);
  ++counters_.pieces;
  moved(e.idx, b1 - b0);
}

void PrefetchCopies::issue_rest(Entry& e) {
  const size_t b0 = piece_begin(e.next_piece);
  CUDA_CHECK(cudaMemcpyAsync(e.dst + b0, e.src + b0, expert_bytes_ - b0, cudaMemcpyHostToDevice, copy_));
  CUDA_CHECK(cudaEventRecord(slot_ev_[e.idx], copy_));
  e.next_piece = pieces_;
  moved(e.idx, expert_bytes_ - b0);
}

void PrefetchCopies::moved(size_t idx, size_t bytes) {
  counters_.bytes += bytes;
  track_[idx].bytes += bytes;
  if (track_[idx].wasted) counters_.wasted_bytes += bytes;
}

void PrefetchCopies::run() {
  std::unique_lock<std::mutex> lk(mu_);
  if (cudaSetDevice(device_) != cudaSuccess) {
    error_ = "cudaSetDevice failed in the prefetch scheduler";
    return;
  }
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    try {
      // Pieces that landed free their place on the link.
      while (!in_flight_.empty() && cudaEventQuery(in_flight_.front()) == cudaSuccess) {
        free_ev_.push_back(in_flight_.front());
        in_flight_.pop_front();
      }
      if (static_cast<int>(in_flight_.size()) >= max_in_flight_) {
        cudaEvent_t ev = in_flight_.front();
        lk.unlock();  // the forward thread may issue demand copies meanwhile
        const cudaError_t r = cudaEventSynchronize(ev);
        lk.lock();
        CUDA_CHECK(r);
        continue;  // the queue may have changed (promotions, cancellations)
      }
      Entry& e = queue_.front();
      issue_piece(e);
      if (e.next_piece == pieces_) queue_.pop_front();
    } catch (const std::exception& ex) {
      error_ = ex.what();
      queue_.clear();
      return;
    }
  }
}

void PrefetchCopies::pending(int mi, int n_experts, Pending& out) const {
  check_error();
  out.pieces_in_flight = 0;
  for (cudaEvent_t ev : in_flight_) {
    const cudaError_t q = cudaEventQuery(ev);
    if (q == cudaErrorNotReady) {
      cudaGetLastError();  // not an error
      ++out.pieces_in_flight;
    } else if (q != cudaSuccess) {
      CUDA_CHECK(q);
    }
  }
  out.queued_pieces.assign(static_cast<size_t>(n_experts), 0);
  const size_t first = static_cast<size_t>(mi) * slots_, last = first + static_cast<size_t>(slots_);
  for (const Entry& e : queue_) {
    if (e.idx < first || e.idx >= last) continue;
    const int expert = track_[e.idx].expert;
    if (expert >= 0 && expert < n_experts) out.queued_pieces[static_cast<size_t>(expert)] += pieces_ - e.next_piece;
  }
}

int PrefetchCopies::visit(int mi, const std::vector<uint8_t>& in_step, std::vector<uint8_t>& late) {
  check_error();
  int promoted_pieces = 0;
  late.assign(static_cast<size_t>(slots_), 0);
  for (int s = 0; s < slots_; ++s) {
    const size_t idx = static_cast<size_t>(mi) * slots_ + static_cast<size_t>(s);
    Track& t = track_[idx];
    if (t.expert < 0) continue;
    const bool active = in_step[static_cast<size_t>(t.expert)] != 0;
    const bool first = t.visit_pending;  // the visit the prefetch was made for (the simulator's step)
    if (first) {
      t.visit_pending = false;
      if (active) {
        ++counters_.used;
      } else {
        ++counters_.unused;
        t.wasted = true;
        counters_.wasted_bytes += t.bytes;
      }
    }
    if (!active || t.landed) continue;
    auto q = queued(idx);
    if (q == queue_.end() && cudaEventQuery(slot_ev_[idx]) == cudaSuccess) {
      t.landed = true;
      continue;
    }
    cudaGetLastError();  // cudaErrorNotReady is not an error
    late[static_cast<size_t>(s)] = 1;
    if (first) ++counters_.late_hits;
    if (q != queue_.end()) {
      promoted_pieces += pieces_ - q->next_piece;
      issue_rest(*q);  // promotion: on the stream now, ahead of this layer's demand copies
      queue_.erase(q);
      if (first) ++counters_.promoted;
    }
  }
  return promoted_pieces;
}

void PrefetchCopies::cancel_slot(int mi, int s) {
  const size_t idx = static_cast<size_t>(mi) * slots_ + static_cast<size_t>(s);
  auto q = queued(idx);
  if (q != queue_.end()) {
    queue_.erase(q);
    ++counters_.cancelled;
  }
  track_[idx] = Track{};  // the slot now holds a demand copy's expert (issued pieces land before it: FIFO)
}

void PrefetchCopies::cancel_all() {
  std::lock_guard<std::mutex> lk(mu_);
  counters_.cancelled += queue_.size();
  queue_.clear();
  std::fill(track_.begin(), track_.end(), Track{});
}

PrefetchCounters PrefetchCopies::counters() const {
  std::lock_guard<std::mutex> lk(mu_);
  return counters_;
}

}  // namespace moe::cuda_backend
