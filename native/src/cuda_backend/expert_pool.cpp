#include "expert_pool.h"

#include <algorithm>
#include <string>

#include "cuda_check.h"
#include "moe/error.h"

namespace moe::cuda_backend {

ExpertPool::ExpertPool(int moe_layers, int slots, int staging, int num_experts, size_t expert_bytes)
    : layers_(moe_layers), slots_(slots), staging_(staging), experts_(num_experts), stride_(expert_bytes) {
  if (slots < 0 || slots > num_experts) throw Error("offload: " + std::to_string(slots) + " slots per layer (0.." + std::to_string(num_experts) + ")");
  if (staging < 1) throw Error("offload: at least one staging buffer is needed");
  const size_t n = (static_cast<size_t>(moe_layers) * slots + static_cast<size_t>(staging)) * stride_;
  memory_ = DeviceMemory(n);
  base_ = memory_.as<uint8_t>();
  CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
  ready_.resize(static_cast<size_t>(staging));
  free_.resize(static_cast<size_t>(staging));
  for (int b = 0; b < staging; ++b) {
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_[static_cast<size_t>(b)], cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&free_[static_cast<size_t>(b)], cudaEventDisableTiming));
  }
  CUDA_CHECK(cudaEventCreateWithFlags(&resident_done_, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&slots_done_, cudaEventDisableTiming));
  // At most one loaded wait and one wait per staged expert per layer and forward: 2 events each.
  timing_.resize(static_cast<size_t>(2) * moe_layers * (num_experts + 2));
  for (cudaEvent_t& e : timing_) CUDA_CHECK(cudaEventCreate(&e));
  physical_.assign(static_cast<size_t>(moe_layers), std::vector<int32_t>(static_cast<size_t>(slots), -1));
  where_.assign(static_cast<size_t>(num_experts), -1);
  in_step_.assign(static_cast<size_t>(num_experts), 0);
  wanted_.assign(static_cast<size_t>(slots), -1);
}

ExpertPool::~ExpertPool() {
  if (copy_) cudaStreamSynchronize(copy_);
  for (cudaEvent_t e : ready_) cudaEventDestroy(e);
  for (cudaEvent_t e : free_) cudaEventDestroy(e);
  for (cudaEvent_t e : timing_) cudaEventDestroy(e);
  if (resident_done_) cudaEventDestroy(resident_done_);
  if (slots_done_) cudaEventDestroy(slots_done_);
  if (copy_) cudaStreamDestroy(copy_);
}

void ExpertPool::forget() {
  for (auto& p : physical_) std::fill(p.begin(), p.end(), -1);
}

void ExpertPool::place(int mi, const std::vector<int32_t>& active, const std::vector<int32_t>& cached_slot, LayerPlacement& out) {
  std::vector<int32_t>& phys = physical_.at(static_cast<size_t>(mi));
  out.resident.clear();
  out.loaded.clear();
  out.staged.clear();
  out.copy_slot.clear();
  out.copy_expert.clear();
  out.late_slot.clear();
  out.late_expert.clear();
  out.source.assign(static_cast<size_t>(experts_), nullptr);
  std::fill(where_.begin(), where_.end(), -1);
  for (int s = 0; s < slots_; ++s) {
    if (phys[static_cast<size_t>(s)] >= 0) where_[static_cast<size_t>(phys[static_cast<size_t>(s)])] = s;
  }
  for (int32_t e : active) in_step_[static_cast<size_t>(e)] = 1;
  // The slots after the step, as the cache says; every slot whose content changes gets a copy. A slot
  // whose old occupant this step still computes (a prefill forward spans many cache steps: an expert
  // may be requested, then evicted) is written only after that computation (late copies).
  std::vector<int32_t>& wanted = wanted_;
  std::fill(wanted.begin(), wanted.end(), -1);
  for (int e = 0; e < experts_; ++e) {
    const int32_t s = cached_slot[static_cast<size_t>(e)];
    if (s < 0) continue;
    if (s >= slots_) {
      throw Error("offload: the expert cache put expert " + std::to_string(e) + " in slot " + std::to_string(s) + " but the GPU pool has " +
                  std::to_string(slots_) + " slots per layer (cache larger than the pool)");
    }
    if (wanted[static_cast<size_t>(s)] >= 0) throw Error("offload: the expert cache put two experts in slot " + std::to_string(s));
    wanted[static_cast<size_t>(s)] = e;
  }
  for (int s = 0; s < slots_; ++s) {
    const int32_t e = wanted[static_cast<size_t>(s)], old = phys[static_cast<size_t>(s)];
    if (e < 0 || e == old) continue;
    const bool late = old >= 0 && in_step_[static_cast<size_t>(old)] && where_[static_cast<size_t>(old)] == s;
    (late ? out.late_slot : out.copy_slot).push_back(s);
    (late ? out.late_expert : out.copy_expert).push_back(e);
  }
  for (int32_t e : active) {
    const int32_t old_slot = where_[static_cast<size_t>(e)], new_slot = cached_slot[static_cast<size_t>(e)];
    if (old_slot >= 0) {
      out.resident.push_back(e);
      out.source[static_cast<size_t>(e)] = slot(mi, old_slot);
    } else if (new_slot >= 0) {
      out.loaded.push_back(e);
      out.source[static_cast<size_t>(e)] = slot(mi, new_slot);
    } else {
      out.source[static_cast<size_t>(e)] = staging_buffer(static_cast<int>(out.staged.size()) % staging_);
      out.staged.push_back(e);
    }
  }
  for (int32_t e : active) in_step_[static_cast<size_t>(e)] = 0;
  for (int s = 0; s < slots_; ++s) {
    if (wanted[static_cast<size_t>(s)] >= 0) phys[static_cast<size_t>(s)] = wanted[static_cast<size_t>(s)];
  }
}

void ExpertPool::timed_wait(cudaStream_t compute, cudaEvent_t ev) {
  ++counters.waits;
  if (timing_used_ + 2 > timing_.size()) {  // more waits than planned for: still correct, not timed
    CUDA_CHECK(cudaStreamWaitEvent(compute, ev, 0));
    return;
  }
  CUDA_CHECK(cudaEventRecord(timing_[timing_used_], compute));
  CUDA_CHECK(cudaStreamWaitEvent(compute, ev, 0));
  CUDA_CHECK(cudaEventRecord(timing_[timing_used_ + 1], compute));
  timing_used_ += 2;
}

void ExpertPool::end_forward() {
  for (size_t i = 0; i + 1 < timing_used_; i += 2) {
    float ms = 0.f;
    if (cudaEventElapsedTime(&ms, timing_[i], timing_[i + 1]) == cudaSuccess) counters.copy_wait_ms += ms;
    else cudaGetLastError();
  }
  timing_used_ = 0;
  ++counters.forwards;
}

}  // namespace moe::cuda_backend
