// Prefetch in the offloaded MoE layer (issue 12): the backend's side of the controller's decisions.
//  - attach_prefetch: a PrefetchCopies (scheduler thread, see prefetch_copies.h) when the interceptor
//    prefetches; a new interceptor (a cold cache) drops the queued prefetches.
//  - issue_prefetch_orders: the orders the controller decided at the forward's start (layers before the
//    lookahead) and after each layer's routing (layer + lookahead) are queued; the pool's record of what
//    each slot holds follows at once (ExpertPool::set_physical), so the next placement sees them resident.
//  - prefetch_gate / prefetch_gate_deliver (next-gate): layer l+1's router applied on the GPU to layer l's
//    MoE input, top-k on the device, the ids brought to the host in the same synchronisation as layer l's
//    routing and handed to the controller before its on_plan.
//  - prefetch_place: at a layer's placement (copy stream lock held until its demand copies are issued),
//    prefetched experts whose copy has not landed move from `resident` to `loaded` (computed after the
//    layer's slot-copy event), their queued pieces promoted to demand; slots a demand copy rewrites drop a
//    queued prefetch.
// Prefill forwards get no orders: the controller decides their prefetches inside the layer's accounting
// and the placement moves them with the layer's demand copies (documented in the README).
#include <algorithm>
#include <string>

#include "cuda_backend_impl.h"
#include "cuda_check.h"
#include "moe/error.h"
#include "moe/offload/prefetch.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda_backend {

void CudaBackend::attach_prefetch(MoeInterceptor* i) {
  if (prefetch_) prefetch_->cancel_all();
  const offload::PrefetchOptions* o = i && pool_ ? i->prefetch_options() : nullptr;
  if (!o) return;
  if (!prefetch_ || prefetch_pieces_ != o->pieces || prefetch_in_flight_ != o->max_in_flight) {
    prefetch_.reset();
    prefetch_ = std::make_unique<PrefetchCopies>(opt_.device, static_cast<int>(moe_index_.size()), pool_->slots(), host_experts_->expert_bytes(), o->pieces,
                                                 o->max_in_flight, pool_->copy_stream());
    prefetch_pieces_ = o->pieces;
    prefetch_in_flight_ = o->max_in_flight;
  }
}

bool CudaBackend::prefetching() const { return prefetch_ && interceptor_ && interceptor_->prefetch_options(); }

void CudaBackend::issue_prefetch_orders() {
  prefetch_release();
  if (!prefetching()) return;
  const std::vector<offload::PrefetchOrder>* orders = interceptor_->prefetch_orders();
  if (!orders) return;
  for (const offload::PrefetchOrder& o : *orders) {
    pool_->set_physical(o.mi, o.slot, o.expert);
    prefetch_->enqueue(o.mi, o.slot, o.expert, host_experts_->expert(o.mi, o.expert), pool_->slot(o.mi, o.slot));
  }
}

void CudaBackend::prefetch_gate(int l, int rows) {
  gate_layer_ = interceptor_ && prefetching() ? interceptor_->gate_next_layer(l) : -1;
  if (gate_layer_ < 0) return;
  const int H = c_.hidden_size, E = c_.n_routed_experts, k = c_.num_experts_per_tok;
  const size_t need = static_cast<size_t>(rows) * (E + 2 * k) * 4 + 512;
  if (gate_dev_.bytes() < need) {
    gate_dev_ = DeviceMemory(need);
    gate_host_ = PinnedMemory(static_cast<size_t>(rows) * k * sizeof(int32_t));
  }
  float* logits = gate_dev_.as<float>();
  int32_t* ids = reinterpret_cast<int32_t*>(logits + static_cast<size_t>(rows) * E);
  float* weights = reinterpret_cast<float*>(ids + static_cast<size_t>(rows) * k);
  const DeviceLayer& next = w_->layers[static_cast<size_t>(gate_layer_)];
  cuda::linear_bf16_out_f32(cublas_, ws_.x, rows, H, H, next.router, E, logits, E, false, stream_);
  cuda::router_topk(logits, rows, E, k, c_.norm_topk_prob, static_cast<float>(c_.routed_scaling_factor), ids, weights, stream_);
  CUDA_CHECK(cudaMemcpyAsync(gate_host_.get(), ids, static_cast<size_t>(rows) * k * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
}

void CudaBackend::prefetch_gate_deliver(int l, int rows) {
  if (gate_layer_ < 0) return;
  interceptor_->on_gate_next(l, static_cast<const int32_t*>(gate_host_.get()), rows, c_.num_experts_per_tok);
  gate_layer_ = -1;
}

bool CudaBackend::prefetch_place(int mi, LayerPlacement& P) {
  if (!prefetching()) return false;
  // (Still held when the last forward threw between here and prefetch_release.)
  if (!prefetch_link_.owns_lock()) prefetch_link_ = std::unique_lock<std::mutex>(prefetch_->link());
  pf_in_step_.assign(static_cast<size_t>(c_.n_routed_experts), 0);
  for (int32_t e : plan_.active) pf_in_step_[static_cast<size_t>(e)] = 1;
  // promoted pieces are demand work now: later layers' backlog counts them (this layer's took them as late)
  const int promoted = prefetch_->visit(mi, pf_in_step_, pf_late_);
  const offload::MissPolicy* p = interceptor_->miss_policy();
  if (p && promoted > 0) note_copy_ms(promoted * p->costs.copy_ms / prefetch_->pieces());
  for (int32_t s : P.copy_slot) prefetch_->cancel_slot(mi, s);
  for (int32_t s : P.late_slot) prefetch_->cancel_slot(mi, s);
  // Late hits leave `resident` now and join `loaded` after the miss policy has looked at the misses
  // (prefetch_join_loaded): they are hits waiting for their copy, never candidates for the CPU.
  pf_late_experts_.clear();
  for (size_t i = 0; i < P.resident.size();) {
    const int32_t e = P.resident[i];
    const int32_t s = cached_slot_[static_cast<size_t>(e)];
    if (s >= 0 && pf_late_[static_cast<size_t>(s)]) {
      pf_late_experts_.push_back(e);
      P.resident.erase(P.resident.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  return !pf_late_experts_.empty();
}

void CudaBackend::prefetch_join_loaded(LayerPlacement& P) {
  if (pf_late_experts_.empty()) return;
  P.loaded.insert(P.loaded.end(), pf_late_experts_.begin(), pf_late_experts_.end());
  std::sort(P.loaded.begin(), P.loaded.end());
  pf_late_experts_.clear();
}

void CudaBackend::prefetch_release() {
  if (prefetch_link_.owns_lock()) prefetch_link_.unlock();
}

std::string CudaBackend::prefetch_info() const {
  if (!prefetch_) return "null";
  const PrefetchCounters k = prefetch_->counters();
  return "{\"orders\":" + std::to_string(k.orders) + ",\"pieces\":" + std::to_string(k.pieces) + ",\"bytes\":" + std::to_string(k.bytes) +
         ",\"used\":" + std::to_string(k.used) + ",\"unused\":" + std::to_string(k.unused) + ",\"wastedBytes\":" + std::to_string(k.wasted_bytes) +
         ",\"lateHits\":" + std::to_string(k.late_hits) + ",\"promoted\":" + std::to_string(k.promoted) + ",\"cancelled\":" + std::to_string(k.cancelled) +
         ",\"piecesPerExpert\":" + std::to_string(prefetch_pieces_) + ",\"piecesInFlight\":" + std::to_string(prefetch_in_flight_) + "}";
}

}  // namespace moe::cuda_backend
