#pragma once
// The GPU side of offloaded routed experts (issue 6): C slots per MoE layer (one device allocation),
// a ring of staging buffers for experts the cache bypasses, a dedicated copy stream with its events,
// and the placement of one MoE layer's step (which expert is computed from where, what is copied).
//
// Who decides: the expert cache (moe::offload::LayerCache behind the MoeInterceptor, the simulator's
// twin) decides which expert occupies which slot; this pool only mirrors that on the device. It keeps
// `physical_[mi][s]`, the expert whose weights slot s of MoE layer mi really holds, and after each
// step makes the slots hold what the cache says (copies host -> slot), streaming the rest through
// staging. Nothing here allocates after construction (the step's vectors are reserved up front).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "device_memory.h"
#include "host_experts.h"

namespace moe::cuda_backend {

using bf16 = __nv_bfloat16;

// Cumulative since load; the bench takes differences.
struct OffloadCounters {
  uint64_t forwards = 0;
  uint64_t slot_copies = 0;    // experts copied into a cache slot (the cache's inserts, as data)
  uint64_t staged_copies = 0;  // experts streamed through staging (bypasses, cache 0)
  uint64_t bytes = 0;          // host -> device expert bytes
  uint64_t waits = 0;          // times the compute stream waited for a copy
  double copy_wait_ms = 0;     // time it waited (CUDA events around each wait)
  uint64_t cpu_experts = 0;    // misses computed on the CPU (issue 12)
  uint64_t cpu_rows = 0;       // their token rows
  uint64_t fill_copies = 0;    // background fills of CPU-computed experts into their cache slots
  double cpu_ms = 0;           // CPU workers' busy time (sum over jobs)
  double cpu_wait_ms = 0;      // host time the forward waited for the CPU experts after the GPU work was queued
  double cpu_start_latency_ms = 0;  // summed over layers: start() to the first CPU job's start (a worker waking)
  double cpu_join_latency_ms = 0;   // summed over layers: the last CPU job's end to the forward going on (it waking)
  // Decode forwards (one row per sequence): how many, their wall time inside the backend, and the host
  // work on their critical path per MoE layer (routing on the host -> the layer's upload queued), for
  // the simulator's profile `host` (bench reports them).
  uint64_t decode_forwards = 0;
  double decode_forward_ms = 0;
  double decode_host_layer_ms = 0;
  // The same forwards' MoE layers split where the host finishes a layer (its combine queued, after any wait
  // for CPU experts): head = the routing on the host -> that point (host work, CPU experts' wait); tail =
  // that point -> the next MoE layer's routing on the host (the GPU finishing the layer, the next layer's
  // attention and router, their launches and the synchronisation). Summed over layers with a next MoE
  // layer in the same forward (decode_layer_tails of them), so the timing model's per-layer parts can be
  // compared with the runtime's.
  // Decode forwards that ran as resident steps (cuda_resident_step.cpp): every routed expert in a slot, no
  // per-layer host round trip; not counted in decode_host_layer_ms or the layer split below.
  uint64_t resident_forwards = 0;
  uint64_t decode_layer_tails = 0;
  double decode_layer_head_ms = 0;
  double decode_layer_tail_ms = 0;
  // MOE_TIME_EXPERT_LAUNCHES=1 only (cuda_backend_impl.h): GPU time of the decode forwards' routed-expert
  // launches (CUDA events around each), and how many launches
  uint64_t decode_expert_launches = 0;
  double decode_expert_gpu_ms = 0;
};

// Where each active expert of one layer step is computed from.
struct LayerPlacement {
  std::vector<int32_t> resident;  // in a slot before the step: computed at once from it
  std::vector<int32_t> loaded;    // copied into the slot the cache gave it: computed when the copies land
  std::vector<int32_t> staged;    // not cached after the step: through the staging ring, one by one
  std::vector<int32_t> copy_slot, copy_expert;  // slot copies, those that need no wait first
  std::vector<int32_t> late_slot, late_expert;  // slot copies whose old occupant this step still reads
  std::vector<const uint8_t*> source;           // [E] device blob of each active expert (bf16: gate|up|down)
};

class ExpertPool {
 public:
  // expert_bytes: one expert's blob (moe::quant::ExpertLayout::bytes, a multiple of 256), per slot and staging buffer.
  ExpertPool(int moe_layers, int slots, int staging, int num_experts, size_t expert_bytes);
  ~ExpertPool();
  ExpertPool(const ExpertPool&) = delete;
  ExpertPool& operator=(const ExpertPool&) = delete;

  int layers() const { return layers_; }
  int slots() const { return slots_; }
  int staging() const { return staging_; }
  uint64_t device_bytes() const { return memory_.bytes(); }
  uint8_t* slot(int mi, int s) const { return base_ + (static_cast<size_t>(mi) * slots_ + static_cast<size_t>(s)) * stride_; }
  uint8_t* staging_buffer(int b) const { return base_ + (static_cast<size_t>(layers_) * slots_ + static_cast<size_t>(b)) * stride_; }
  cudaStream_t copy_stream() const { return copy_; }

  // Forget what the slots hold (a new cache starts cold: every expert it wants is copied again).
  void forget();
  // cached_slot[e]: the cache's slot of expert e after this step (-1: not cached); active: the step's
  // distinct experts (ascending). Fills `out` and records the new contents of the slots.
  void place(int mi, const std::vector<int32_t>& active, const std::vector<int32_t>& cached_slot, LayerPlacement& out);
  // The slot's copy was not made (a CPU-computed expert under lazy fill): it holds nothing usable.
  void mark_empty(int mi, int s) { physical_.at(static_cast<size_t>(mi)).at(static_cast<size_t>(s)) = -1; }
  // Issue 12 prefetch: the slot is being written with `expert` (a prefetch copy queued; cuda_prefetch.cpp).
  void set_physical(int mi, int s, int expert) { physical_.at(static_cast<size_t>(mi)).at(static_cast<size_t>(s)) = expert; }
  // The expert slot s of MoE layer mi holds (its copy issued), -1 empty.
  int physical(int mi, int s) const { return physical_[static_cast<size_t>(mi)][static_cast<size_t>(s)]; }

  // Events (created once). ready/free: per staging buffer; resident_done: after the resident launch;
  // slots_done: after the layer's slot copies.
  cudaEvent_t ready(int b) const { return ready_[static_cast<size_t>(b)]; }
  cudaEvent_t freed(int b) const { return free_[static_cast<size_t>(b)]; }
  cudaEvent_t resident_done() const { return resident_done_; }
  cudaEvent_t slots_done() const { return slots_done_; }

  // The compute stream waits for `ev`; the wait is timed (a pair of timing events) and counted.
  void timed_wait(cudaStream_t compute, cudaEvent_t ev);
  // After the forward's final synchronisation: adds up the waits' durations.
  void end_forward();
  // Before a forward: drops the timing pairs of a forward that threw before end_forward().
  void begin_forward() { timing_used_ = 0; }
  OffloadCounters counters;

 private:
  int layers_, slots_, staging_, experts_;
  size_t stride_;  // bytes per slot / staging buffer
  DeviceMemory memory_;
  uint8_t* base_ = nullptr;
  cudaStream_t copy_ = nullptr;
  std::vector<cudaEvent_t> ready_, free_, timing_;
  size_t timing_used_ = 0;
  cudaEvent_t resident_done_ = nullptr, slots_done_ = nullptr;
  std::vector<std::vector<int32_t>> physical_;  // [mi][slot] expert held, -1 empty
  std::vector<int32_t> where_, in_step_;         // scratch [E]
  std::vector<int32_t> wanted_;                  // scratch [slots]
};

}  // namespace moe::cuda_backend
