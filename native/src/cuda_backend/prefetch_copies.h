#pragma once
// Prefetch copies on the GPU (issue 12), built for CUDA's FIFO streams so that the copy engine behaves as
// the simulator's timing model assumes (sim/src/timing/engine.ts: demand copies before prefetch copies, a
// prefetch in PREFETCH_CHUNKS pieces, a queued prefetch promoted to demand on a late hit):
//  - the forward thread issues demand copies straight onto the pool's copy stream, holding link() while it
//    issues one layer's batch (so no prefetch piece slips between its copies and their event);
//  - prefetches wait in a host-side queue; a scheduler thread puts their pieces on the same stream at most
//    `max_in_flight` at a time (default 1), so a demand copy waits behind at most that many pieces;
//  - when a layer's routing finds a prefetched expert whose copy has not landed (a late hit), the pieces
//    still queued are issued at once by the forward thread in its demand batch (promotion), and the expert
//    is computed after the layer's slot-copy event, like a loaded expert;
//  - a slot written by a demand copy while a prefetch into it is still queued drops that prefetch
//    (cancelled; the cache had evicted the prefetched expert before its use).
// Which expert goes into which slot is the expert cache's decision (OffloadController::prefetch_orders);
// this class only moves bytes. Pieces split the expert's bytes evenly (its storage format may vary).
#include <cuda_runtime.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace moe::cuda_backend {

// Cumulative since load (device_info().offload.prefetch).
struct PrefetchCounters {
  uint64_t orders = 0;         // prefetches the cache admitted (copies queued)
  uint64_t pieces = 0;         // pieces the scheduler put on the copy stream
  uint64_t bytes = 0;          // prefetch bytes moved (scheduler and promoted)
  uint64_t used = 0;           // prefetched experts the next visit of their layer computed
  uint64_t unused = 0;         // ... that it did not compute (wasted)
  uint64_t wasted_bytes = 0;   // bytes moved for the unused ones
  uint64_t late_hits = 0;      // used ones whose copy had not landed when the routing arrived
  uint64_t promoted = 0;       // late hits with pieces still queued: issued as demand
  uint64_t cancelled = 0;      // queued prefetches dropped because a demand copy rewrote their slot
};

class PrefetchCopies {
 public:
  PrefetchCopies(int device, int moe_layers, int slots, size_t expert_bytes, int pieces, int max_in_flight, cudaStream_t copy);
  ~PrefetchCopies();
  PrefetchCopies(const PrefetchCopies&) = delete;
  PrefetchCopies& operator=(const PrefetchCopies&) = delete;

  // Held by the forward thread while it issues a layer's demand copies.
  std::mutex& link() { return mu_; }
  // Queues the copy of one expert into slot `slot` of MoE layer mi (forward thread).
  void enqueue(int mi, int slot, int expert, const void* host_src, void* dst);
  // What prefetches still put on the copy stream (forward thread, link() held), for the miss rule's backlog
  // (miss_policy.h CopyBacklog): pieces the scheduler issued that have not landed, and per expert of MoE
  // layer mi the pieces still queued on the host ([n_experts]).
  struct Pending {
    int pieces_in_flight = 0;
    std::vector<int> queued_pieces;
  };
  void pending(int mi, int n_experts, Pending& out) const;
  // Layer mi's routing is on the host (forward thread, link() held): `in_step[e]` marks its active experts.
  // Counts used / unused prefetches of this layer. For each slot whose prefetched expert is active and whose
  // copy has not landed, issues its queued pieces now (promotion) and returns true in late[slot]. Returns
  // the pieces promoted (now on the stream ahead of the layer's demand copies).
  int visit(int mi, const std::vector<uint8_t>& in_step, std::vector<uint8_t>& late);
  // A demand copy is about to write slot (mi, s) (forward thread, link() held): a prefetch still queued for
  // it is dropped.
  void cancel_slot(int mi, int s);
  // Drops every queued prefetch (a new cache starts cold); waits for the pieces already issued.
  void cancel_all();

  PrefetchCounters counters() const;
  int pieces() const { return pieces_; }

 private:
  // A prefetch not yet fully on the stream (at most one per slot).
  struct Entry {
    size_t idx = 0;  // mi * slots + slot
    const char* src = nullptr;
    char* dst = nullptr;
    int next_piece = 0;  // pieces issued so far
  };
  // The slot's latest prefetch: its expert (-1: none, or a demand copy rewrote the slot since), whether
  // its layer's next visit is still to come, whether that visit left it unused, whether it has landed.
  struct Track {
    int expert = -1;
    bool visit_pending = false;
    bool wasted = false;
    bool landed = false;
    uint64_t bytes = 0;
  };
  void run();
  void issue_piece(Entry& e);  // mu_ held
  void issue_rest(Entry& e);   // mu_ held: the remaining pieces as one copy
  void moved(size_t idx, size_t bytes);
  void check_error() const;
  std::deque<Entry>::iterator queued(size_t idx);
  size_t piece_begin(int p) const { return expert_bytes_ * static_cast<size_t>(p) / static_cast<size_t>(pieces_); }

  int device_, layers_, slots_, pieces_, max_in_flight_;
  size_t expert_bytes_;
  cudaStream_t copy_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;           // not fully issued, in order
  std::vector<Track> track_;          // [mi * slots + s]
  std::vector<cudaEvent_t> slot_ev_;  // [mi * slots + s] after the last piece of the slot's latest prefetch
  std::deque<cudaEvent_t> in_flight_; // events of the scheduler's pieces on the stream
  std::vector<cudaEvent_t> free_ev_;
  PrefetchCounters counters_;
  std::string error_;                 // the scheduler's failure, thrown on the forward thread
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moe::cuda_backend
