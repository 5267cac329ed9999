// Resident steps of the offloaded runtime. A decode forward (at most kGraphMaxRows rows) in which every
// routed expert of every MoE layer sits in a slot, as the expert cache says, and whose interceptor lets it
// see the plans after the forward (MoeInterceptor::plans_after_forward: a cache, nothing recorded, no
// prefetcher), needs nothing from the host between its layers. So no MoE layer brings its routing to the
// host (the offloaded path's one synchronisation per layer, ~26 per step, which made an offloaded run with
// every expert cached ~1.5x slower than the all-resident engine at batch 1): the routing stays on the
// device (the router's top-k, or routing replay's rows uploaded before the forward), each layer's experts
// run in one launch from per-layer slot pointer tables, and the forward is a CUDA graph like the
// all-resident engine's. After the forward's synchronisation the interceptor sees each layer's plan in
// layer order (the cache's hits and bookkeeping, the statistics), exactly the calls it would have seen
// during the forward; with every expert cached they cannot decide anything that moves data, which is
// checked rather than assumed.
// Arithmetic: the offloaded path's (one launch over every entry, per-entry outputs, one combine in the
// fixed order), so the tokens are bitwise those of the same run without resident steps.
// The simulator's twin: sim/src/timing/engine.ts, residentStep (same rule, same name).
#include <cstring>
#include <string>

#include "cuda_backend_impl.h"
#include "cuda_check.h"
#include "moe/error.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda_backend {

namespace {
// Pointers per MoE layer in the tables: gate, up, down of each bf16 expert, then each quantized blob.
constexpr size_t kTablePointers = 4;
}  // namespace

size_t CudaBackend::resident_table_bytes() const {
  return static_cast<size_t>(pool_->layers()) * kTablePointers * c_.n_routed_experts * sizeof(void*);
}

size_t CudaBackend::resident_plan_bytes() const {
  return static_cast<size_t>(pool_->layers()) * kGraphMaxRows * c_.num_experts_per_tok * (sizeof(int32_t) + sizeof(float));
}

bool CudaBackend::resident_step_possible(const StepPlan& p) const {
  if (!pool_ || !interceptor_ || hook_ || !p.decode_rows || p.T > kGraphMaxRows) return false;
  const int E = c_.n_routed_experts;
  if (pool_->slots() < E || !interceptor_->plans_after_forward()) return false;
  for (size_t l = 0; l < moe_index_.size(); ++l) {
    const int mi = moe_index_[l];
    if (mi < 0) continue;
    for (int e = 0; e < E; ++e) {
      const int s = interceptor_->cached_slot(static_cast<int>(l), e);
      if (s < 0 || pool_->physical(mi, s) != e) return false;
    }
  }
  return true;
}

void CudaBackend::begin_resident_step(const StepPlan& p) {
  const int E = c_.n_routed_experts, k = c_.num_experts_per_tok, H = c_.hidden_size, dff = c_.moe_intermediate_size;
  const size_t tables = resident_table_bytes(), plans = resident_plan_bytes();
  if (resident_dev_.bytes() == 0) {
    resident_dev_ = DeviceMemory(tables + plans);
    resident_host_ = PinnedMemory(tables + plans);
  }
  // A background fill of the last step may be what completed the set: the slots are read only after it.
  for (size_t mi = 0; mi < fill_pending_.size(); ++mi) {
    if (!fill_pending_[mi]) continue;
    CUDA_CHECK(cudaStreamWaitEvent(stream_, fill_done_[mi], 0));
    fill_pending_[mi] = 0;
  }
  if (!resident_tables_ok_) {
    // Rebuilt after any forward that placed experts (slots may have moved); the host copy is not touched
    // again before this upload has run (every forward ends with a synchronisation).
    auto* t = static_cast<const void**>(resident_host_.get());
    for (size_t l = 0; l < moe_index_.size(); ++l) {
      const int mi = moe_index_[l];
      if (mi < 0) continue;
      const void** row = t + static_cast<size_t>(mi) * kTablePointers * E;
      for (int e = 0; e < E; ++e) {
        const uint8_t* blob = pool_->slot(mi, interceptor_->cached_slot(static_cast<int>(l), e));
        const bf16* base = reinterpret_cast<const bf16*>(blob);
        row[e] = base;
        row[E + e] = base + static_cast<size_t>(dff) * H;
        row[2 * E + e] = base + static_cast<size_t>(2) * dff * H;
        row[3 * E + e] = blob;
      }
    }
    CUDA_CHECK(cudaMemcpyAsync(resident_dev_.get(), resident_host_.get(), tables, cudaMemcpyHostToDevice, stream_));
    resident_tables_ok_ = true;
  }
  // Routing replay: the rows on_plan will substitute, uploaded now (the graph copies them into the router's
  // output). The interceptor's answer is fixed for its lifetime, and set_moe_interceptor drops the graphs.
  resident_replay_ = false;
  auto* ids = reinterpret_cast<int32_t*>(static_cast<char*>(resident_host_.get()) + tables);
  float* rw = reinterpret_cast<float*>(ids + static_cast<size_t>(pool_->layers()) * kGraphMaxRows * k);
  const size_t n = static_cast<size_t>(p.T) * k;
  for (size_t l = 0; l < moe_index_.size(); ++l) {
    const int mi = moe_index_[l];
    if (mi < 0) continue;
    plan_.layer = static_cast<int>(l);
    plan_.tokens = p.T;
    plan_.k = k;
    const bool ahead = interceptor_->routing_ahead(plan_);
    if (mi > 0 && ahead != resident_replay_) throw Error("CUDA backend: the interceptor gave the routing ahead for some MoE layers only");
    resident_replay_ = ahead;
    if (!ahead) continue;
    if (plan_.expert.size() != n || plan_.weight.size() != n) throw Error("CUDA backend: the routing given ahead has the wrong size for layer " + std::to_string(l));
    const size_t at = static_cast<size_t>(mi) * kGraphMaxRows * k;
    std::memcpy(ids + at, plan_.expert.data(), n * sizeof(int32_t));
    std::memcpy(rw + at, plan_.weight.data(), n * sizeof(float));
  }
  if (resident_replay_) {
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(resident_dev_.get()) + tables, ids, plans, cudaMemcpyHostToDevice, stream_));
  }
}

// Inside the forward (and its graph): nothing here waits for the host.
void CudaBackend::moe_resident(int l, int T) {
  const DeviceLayer& D = w_->layers[static_cast<size_t>(l)];
  const int E = c_.n_routed_experts, k = c_.num_experts_per_tok, H = c_.hidden_size;
  const int mi = moe_index_[static_cast<size_t>(l)];
  const size_t n = static_cast<size_t>(T) * k, tables = resident_table_bytes();
  char* dev = static_cast<char*>(resident_dev_.get());
  int32_t* ids = reinterpret_cast<int32_t*>(dev + tables) + static_cast<size_t>(mi) * kGraphMaxRows * k;
  float* rw = reinterpret_cast<float*>(reinterpret_cast<int32_t*>(dev + tables) + static_cast<size_t>(pool_->layers()) * kGraphMaxRows * k) +
              static_cast<size_t>(mi) * kGraphMaxRows * k;
  if (resident_replay_) {
    CUDA_CHECK(cudaMemcpyAsync(ws_.ids, ids, n * sizeof(int32_t), cudaMemcpyDeviceToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(ws_.rw, rw, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
  } else {  // kept for the plans the interceptor sees after the forward
    CUDA_CHECK(cudaMemcpyAsync(ids, ws_.ids, n * sizeof(int32_t), cudaMemcpyDeviceToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(rw, ws_.rw, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
  }
  if (D.shared_gu) mlp(D.shared_gu, D.shared_down, w_->shared_ff, T);
  const void* const* row = reinterpret_cast<const void* const*>(dev) + static_cast<size_t>(mi) * kTablePointers * E;
  launch_expert_entries(T, ws_.ids, ws_.rw, reinterpret_cast<const bf16* const*>(row), reinterpret_cast<const uint8_t* const*>(row + 3 * E));
  cuda::combine_expert_outputs(ws_.expert_out, ws_.ids, T, k, H, ws_.h, H, true, stream_);
}

// Before the forward's synchronisation: the router's routing of every layer to the host.
void CudaBackend::fetch_resident_plans() {
  if (resident_replay_) return;
  const size_t tables = resident_table_bytes();
  CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(resident_host_.get()) + tables, static_cast<char*>(resident_dev_.get()) + tables, resident_plan_bytes(),
                             cudaMemcpyDeviceToHost, stream_));
}

// After it: the interceptor sees each layer's plan, in layer order.
void CudaBackend::end_resident_step(int T) {
  const int E = c_.n_routed_experts, k = c_.num_experts_per_tok;
  const size_t n = static_cast<size_t>(T) * k;
  const auto* ids = reinterpret_cast<const int32_t*>(static_cast<const char*>(resident_host_.get()) + resident_table_bytes());
  const float* rw = reinterpret_cast<const float*>(ids + static_cast<size_t>(pool_->layers()) * kGraphMaxRows * k);
  const offload::MissPolicy* policy = interceptor_->miss_policy();
  for (size_t l = 0; l < moe_index_.size(); ++l) {
    const int mi = moe_index_[l];
    if (mi < 0) continue;
    const size_t at = static_cast<size_t>(mi) * kGraphMaxRows * k;
    plan_.layer = static_cast<int>(l);
    plan_.tokens = T;
    plan_.k = k;
    plan_.expert.assign(ids + at, ids + at + n);
    plan_.weight.assign(rw + at, rw + at + n);
    if (policy && !policy->admit) interceptor_->set_copy_backlog(offload::CopyBacklog{});  // nothing is copied
    interceptor_->on_plan(plan_);
    if (plan_.expert.size() != n || plan_.weight.size() != n) throw Error("MoE interceptor changed the size of the plan of layer " + std::to_string(l));
    if (std::memcmp(plan_.expert.data(), ids + at, n * sizeof(int32_t)) != 0 || std::memcmp(plan_.weight.data(), rw + at, n * sizeof(float)) != 0) {
      throw Error("CUDA backend: the interceptor rewrote layer " + std::to_string(l) + "'s routing after a resident step computed it (internal error)");
    }
    plan_.group(E);
    for (int32_t e : plan_.active) {
      const int s = interceptor_->cached_slot(static_cast<int>(l), e);
      if (s < 0 || pool_->physical(mi, s) != e) {
        throw Error("CUDA backend: the expert cache moved expert " + std::to_string(e) + " of layer " + std::to_string(l) + " during a resident step (internal error)");
      }
    }
  }
}

}  // namespace moe::cuda_backend
