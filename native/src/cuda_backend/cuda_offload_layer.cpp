// The MoE block with the routed experts offloaded (issue 6). Per MoE layer and forward:
//   1. the routing comes to the host (one synchronisation, as the interceptor needs anyway); the
//      MoeInterceptor (OffloadController: routing replay, the expert cache) sees and may rewrite it;
//   2. ExpertPool::place turns the cache's decision into data movement: experts already in a slot
//      (resident), experts copied into the slot the cache gave them (loaded), experts the cache does
//      not keep (staged: streamed through a ring of staging buffers);
//   3. copies go on the pool's copy stream at once; the shared experts, then the resident experts (one
//      launch) run while they are in flight; the loaded experts run in one launch after the last slot
//      copy's event, the staged experts one launch each after their own copy (the ring's buffer is
//      reused only after the launch that read it: `freed` events);
//   4. one combine sums every token's k expert outputs in the fixed order j = 0..k-1, exactly as the
//      all-resident path does, so the result is bitwise the same whatever was resident.
// Launches compute a subset through masked expert ids (-1: skipped) and per-entry outputs
// (expert_out); the >= kCublasRows path runs cuBLAS per expert from each expert's own source.
// Quantized experts (issue 13: int8 / int4 blobs in the slots and staging buffers) take the same path
// with a table of blob pointers and the q kernels (moe_cuda_quant.h); the cuBLAS path dequantizes each
// expert into one bf16 scratch expert first.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "cuda_backend_impl.h"
#include "cuda_check.h"
#include "moe/error.h"
#include "moe_cuda_kernels.h"
#include "moe_cuda_quant.h"

namespace moe::cuda_backend {

// The layer's routing to the host, through the interceptor (which may rewrite it), grouped by expert;
// when offloading, cached_slot_ says where the cache holds each expert. Used by both MoE paths
// (resident: through intercept(); offloaded: moe_offloaded()).
void CudaBackend::fetch_plan(int l, int rows) {
  const int E = c_.n_routed_experts, k = c_.num_experts_per_tok;
  const size_t n = static_cast<size_t>(rows) * k;
  plan_.layer = l;
  plan_.tokens = rows;
  plan_.k = k;
  plan_.expert.resize(n);
  plan_.weight.resize(n);
  CUDA_CHECK(cudaMemcpyAsync(plan_.expert.data(), ws_.ids, n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaMemcpyAsync(plan_.weight.data(), ws_.rw, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  prefetch_gate(l, rows);  // issue 12 prefetch hook: next-gate's ids come back in this synchronisation
  if (cpu_path(rows)) {
    // Misses may be computed on the CPU: their inputs come to the host in the same synchronisation.
    const size_t xb = static_cast<size_t>(rows) * c_.hidden_size * sizeof(bf16);
    if (x_host_.bytes() == 0) x_host_ = PinnedMemory(static_cast<size_t>(kCpuMaxRows) * c_.hidden_size * sizeof(bf16));
    CUDA_CHECK(cudaMemcpyAsync(x_host_.get(), ws_.x, xb, cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  const double on_host = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (decode_forward_ && pool_ && layer_end_ms_ > 0) {  // the last MoE layer's head and tail (expert_pool.h)
    pool_->counters.decode_layer_head_ms += layer_end_ms_ - plan_on_host_ms_;
    pool_->counters.decode_layer_tail_ms += on_host - layer_end_ms_;
    ++pool_->counters.decode_layer_tails;
  }
  plan_on_host_ms_ = on_host;
  prefetch_gate_deliver(l, rows);  // issue 12 prefetch hook
  if (interceptor_) {
    // The miss rule's copy backlog, taken now (the simulator decides when the routing is on the host);
    // --cpu-fill none: the controller decides the misses in on_plan and needs it first.
    if (cpu_path(rows)) {
      take_copy_backlog(moe_index_[static_cast<size_t>(l)]);
      if (!interceptor_->miss_policy()->admit) interceptor_->set_copy_backlog(layer_backlog_);
    }
    interceptor_->on_plan(plan_);
    if (plan_.expert.size() != n || plan_.weight.size() != n) {
      throw Error("MoE interceptor changed the size of the plan of layer " + std::to_string(l));
    }
  }
  plan_.group(E);  // also checks every id is in range
  // Only the offloaded path sizes cached_slot_ (all-resident runs have no slots to look up).
  for (size_t e = 0; e < cached_slot_.size(); ++e) {
    cached_slot_[e] = interceptor_ ? interceptor_->cached_slot(l, static_cast<int>(e)) : -1;
  }
  if (interceptor_) {
    for (int32_t e : plan_.active) {
      if (interceptor_->expert_weights(l, e) != nullptr) {
        throw Error("CUDA backend: MoeInterceptor::expert_weights() replacing expert weights is not supported on device 'cuda'; return nullptr");
      }
    }
  }
}

// One launch of the routed-expert kernels (the kernel path: fewer than kCublasRows rows) over the entries
// `mask` names (-1: skipped), each entry's output into ws_.expert_out for combine_expert_outputs. Weights
// from `table` ([3E]: gate, up, down pointers of bf16 experts) or `blobs` ([E] quantized blobs).
void CudaBackend::launch_expert_entries(int T, const int32_t* mask, const float* rw, const bf16* const* table, const uint8_t* const* blobs) {
  const int H = c_.hidden_size, E = c_.n_routed_experts, k = c_.num_experts_per_tok, dff = c_.moe_intermediate_size;
  if (quant_experts_) {
    if (T <= kGemvMaxRows) {
      cuda::expert_ffn_decode_q_entries(ws_.x, T, H, mask, rw, k, E, blobs, qlayout_, ws_.expert_ws, ws_.expert_ws_bytes, stream_, ws_.expert_out);
    } else {
      cuda::expert_ffn_grouped_q_entries(ws_.x, T, H, mask, rw, k, E, blobs, qlayout_, ws_.expert_ws, ws_.expert_ws_bytes, stream_, ws_.expert_out);
    }
    return;
  }
  const bf16* const* tg = table;
  const bf16* const* tu = table + E;
  const bf16* const* td = table + 2 * E;
  if (T <= kGemvMaxRows && gemv_ok_) {
    cuda::expert_ffn_decode_entries(ws_.x, T, H, mask, rw, k, E, H, dff, tg, tu, td, ws_.h, H, false, ws_.expert_ws, ws_.expert_ws_bytes, stream_,
                                    ws_.expert_out);
  } else {
    cuda::expert_ffn_grouped_entries(ws_.x, T, H, mask, rw, k, E, H, dff, tg, tu, td, ws_.h, H, false, ws_.expert_ws, ws_.expert_ws_bytes, stream_,
                                     ws_.expert_out);
  }
}

void CudaBackend::moe_offloaded(int l, int T) {
  const DeviceLayer& D = w_->layers[static_cast<size_t>(l)];
  const int H = c_.hidden_size, E = c_.n_routed_experts, k = c_.num_experts_per_tok, dff = c_.moe_intermediate_size;
  const int mi = moe_index_[static_cast<size_t>(l)];
  const size_t n = static_cast<size_t>(T) * k;
  ExpertPool& X = *pool_;
  resident_tables_ok_ = false;  // this layer's placement may move experts between slots
  fetch_plan(l, T);
  LayerPlacement& P = placement_;
  X.place(mi, plan_.active, cached_slot_, P);
  // Issue 12 prefetch hook: late prefetched experts become loaded; holds the copy-stream lock until the
  // demand copies below are issued (prefetch_release).
  const bool prefetch_late = prefetch_place(mi, P);
  const bool kernel_path = T < kCublasRows;
  // Background fills of this layer from the last step must have landed before its slots are read.
  if (fill_pending_[static_cast<size_t>(mi)]) {
    CUDA_CHECK(cudaStreamWaitEvent(stream_, fill_done_[static_cast<size_t>(mi)], 0));
    fill_pending_[static_cast<size_t>(mi)] = 0;
  }
  cpu_experts_.clear();
  fill_slot_.clear();
  if (cpu_path(T)) {
    choose_cpu_experts(l, mi, T, *interceptor_->miss_policy());
    start_cpu_experts(T);  // the CPU works while the GPU's part is queued below
  }
  prefetch_join_loaded(P);  // issue 12 prefetch hook: late prefetched experts are computed with the loaded ones

  // One upload: routing (as the interceptor left it), pointer table, launch masks.
  const int launches = 2 + static_cast<int>(P.staged.size());
  int32_t *ids_d = nullptr, *ids_h = nullptr, *masks_d = nullptr, *masks_h = nullptr;
  float *rw_d = nullptr, *rw_h = nullptr;
  const bf16 **table_d = nullptr, **table_h = nullptr;
  const uint8_t **blobs_d = nullptr, **blobs_h = nullptr;
  size_t used = 0;
  for (int pass = 0; pass < 2; ++pass) {
    Carver cv(pass == 0 ? ws_.offload_inputs : offload_host_.get());
    int32_t* ids = cv.take<int32_t>(n);
    float* rw = cv.take<float>(n);
    const bf16** table = cv.take<const bf16*>(static_cast<size_t>(3) * E);
    int32_t* masks = kernel_path ? cv.take<int32_t>(static_cast<size_t>(launches) * n) : nullptr;
    const uint8_t** blobs = quant_experts_ ? cv.take<const uint8_t*>(static_cast<size_t>(E)) : nullptr;
    (pass == 0 ? blobs_d : blobs_h) = blobs;
    (pass == 0 ? ids_d : ids_h) = ids;
    (pass == 0 ? rw_d : rw_h) = rw;
    (pass == 0 ? table_d : table_h) = table;
    (pass == 0 ? masks_d : masks_h) = masks;
    used = cv.used();
  }
  if (used > ws_.offload_inputs_bytes) throw Error("CUDA backend: offload inputs exceed their buffer (internal error)");
  std::memcpy(ids_h, plan_.expert.data(), n * sizeof(int32_t));
  std::memcpy(rw_h, plan_.weight.data(), n * sizeof(float));
  for (int e = 0; e < E; ++e) {
    if (quant_experts_) {
      blobs_h[e] = P.source[static_cast<size_t>(e)];
      continue;
    }
    const bf16* base = reinterpret_cast<const bf16*>(P.source[static_cast<size_t>(e)]);
    table_h[e] = base;
    table_h[E + e] = base ? base + static_cast<size_t>(dff) * H : nullptr;
    table_h[2 * E + e] = base ? base + static_cast<size_t>(2) * dff * H : nullptr;
  }
  for (int32_t e : P.resident) launch_of_[static_cast<size_t>(e)] = 0;
  for (int32_t e : P.loaded) launch_of_[static_cast<size_t>(e)] = 1;
  for (size_t i = 0; i < P.staged.size(); ++i) launch_of_[static_cast<size_t>(P.staged[i])] = 2 + static_cast<int>(i);
  if (kernel_path) {
    std::memset(masks_h, 0xff, static_cast<size_t>(launches) * n * sizeof(int32_t));  // all -1
    for (size_t j = 0; j < n; ++j) {
      const int launch = launch_of_[static_cast<size_t>(ids_h[j])];
      if (launch >= 0) masks_h[static_cast<size_t>(launch) * n + j] = ids_h[j];  // -1: computed on the CPU
    }
  }
  CUDA_CHECK(cudaMemcpyAsync(ws_.offload_inputs, offload_host_.get(), used, cudaMemcpyHostToDevice, stream_));
  if (decode_forward_) {  // the GPU has idled since the routing reached the host
    X.counters.decode_host_layer_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count() - plan_on_host_ms_;
  }

  // Copies: slot copies that need no wait, then the first staged experts (one per staging buffer).
  const cudaStream_t cs = X.copy_stream();
  const size_t eb = host_experts_->expert_bytes();
  auto copy_expert = [&](uint8_t* dst, int e) {
    CUDA_CHECK(cudaMemcpyAsync(dst, host_experts_->expert(mi, e), eb, cudaMemcpyHostToDevice, cs));
    X.counters.bytes += eb;
  };
  for (size_t i = 0; i < P.copy_slot.size(); ++i) {
    copy_expert(X.slot(mi, P.copy_slot[i]), P.copy_expert[i]);
    ++X.counters.slot_copies;
  }
  const bool slot_copies = !P.copy_slot.empty() || !P.late_slot.empty() || prefetch_late;
  if (P.late_slot.empty() && slot_copies) CUDA_CHECK(cudaEventRecord(X.slots_done(), cs));
  const int S = X.staging();
  auto stage = [&](size_t i) {
    const int b = static_cast<int>(i % static_cast<size_t>(S));
    CUDA_CHECK(cudaStreamWaitEvent(cs, X.freed(b), 0));  // the launch that read its previous expert
    copy_expert(X.staging_buffer(b), P.staged[i]);
    CUDA_CHECK(cudaEventRecord(X.ready(b), cs));
    ++X.counters.staged_copies;
  };
  for (size_t i = 0; i < std::min(P.staged.size(), static_cast<size_t>(S)); ++i) stage(i);
  note_copies(static_cast<int>(P.copy_slot.size() + std::min(P.staged.size(), static_cast<size_t>(S))));
  prefetch_release();        // issue 12 prefetch hook: the scheduler may put pieces behind the demand copies
  issue_prefetch_orders();   // ... and the layers ahead that this routing decided

  // The large-batch path needs the group sizes on the host (as routed_cublas): group, gather, sync.
  const int32_t* off = nullptr;
  if (!kernel_path) {
    cuda::expert_group(ids_d, static_cast<int>(n), E, ws_.offsets, ws_.sorted, ws_.inv, ws_.group_ws, ws_.group_ws_bytes, stream_);
    CUDA_CHECK(cudaMemcpyAsync(offsets_host_.get(), ws_.offsets, sizeof(int32_t) * (E + 1), cudaMemcpyDeviceToHost, stream_));
    cuda::gather_routed_rows(ws_.x, H, ws_.sorted, k, static_cast<int>(n), H, ws_.xs, stream_);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    off = offsets_host_.as<int32_t>();
  }

  // The shared experts first (on the residual stream, as the all-resident path), while copies run.
  if (D.shared_gu) mlp(D.shared_gu, D.shared_down, w_->shared_ff, T);

  auto compute = [&](int launch, const int32_t* experts, size_t count) {
    if (count == 0) return;
    if (kernel_path) {
      launch_expert_entries(T, masks_d + static_cast<size_t>(launch) * n, rw_d, table_d, blobs_d);
      return;
    }
    // cuBLAS per expert, from its own source (gate|up stacked, then down), as routed_cublas does.
    for (size_t i = 0; i < count; ++i) {
      const int e = experts[i];
      const int m = off[e + 1] - off[e];
      if (m == 0) continue;
      const bf16* src = reinterpret_cast<const bf16*>(P.source[static_cast<size_t>(e)]);
      if (quant_experts_) {  // one bf16 expert at a time, in stream order with its GEMMs
        cuda::dequantize_expert_bf16(P.source[static_cast<size_t>(e)], qlayout_, dequant_.as<bf16>(), stream_);
        src = dequant_.as<bf16>();
      }
      bf16* gu = ws_.gu + static_cast<size_t>(off[e]) * 2 * dff;
      bf16* hb = ws_.hbuf + static_cast<size_t>(off[e]) * dff;
      cuda::linear_bf16_out_bf16(cublas_, ws_.xs + static_cast<size_t>(off[e]) * H, m, H, H, src, 2 * dff, gu, 2 * dff, stream_);
      cuda::silu_mul(gu, m, dff, 2 * dff, hb, dff, stream_);
      cuda::linear_bf16_out_f32(cublas_, hb, m, dff, dff, src + static_cast<size_t>(2) * dff * H, H,
                                ws_.ys + static_cast<size_t>(off[e]) * H, H, false, stream_);
    }
  };

  // MOE_TIME_EXPERT_LAUNCHES=1: events around the kernel launches only (a loaded launch's begins after its wait)
  const bool timed = time_expert_launches_ && decode_forward_ && kernel_path;
  if (timed && !P.resident.empty()) mark_expert_launch();
  compute(0, P.resident.data(), P.resident.size());
  if (timed && !P.resident.empty()) mark_expert_launch();
  if (!P.late_slot.empty()) {
    // Slots whose previous occupant the resident launch just read: written after it.
    CUDA_CHECK(cudaEventRecord(X.resident_done(), stream_));
    CUDA_CHECK(cudaStreamWaitEvent(cs, X.resident_done(), 0));
    for (size_t i = 0; i < P.late_slot.size(); ++i) {
      copy_expert(X.slot(mi, P.late_slot[i]), P.late_expert[i]);
      ++X.counters.slot_copies;
    }
    CUDA_CHECK(cudaEventRecord(X.slots_done(), cs));
    note_copies(static_cast<int>(P.late_slot.size()));
  }
  issue_fills(mi);  // after the demand copies: the fetched misses are not queued behind them
  if (!P.loaded.empty()) {
    X.timed_wait(stream_, X.slots_done());
    if (timed) mark_expert_launch();
    compute(1, P.loaded.data(), P.loaded.size());
    if (timed) mark_expert_launch();
  }
  for (size_t i = 0; i < P.staged.size(); ++i) {
    const int b = static_cast<int>(i % static_cast<size_t>(S));
    X.timed_wait(stream_, X.ready(b));
    compute(2 + static_cast<int>(i), &P.staged[i], 1);
    CUDA_CHECK(cudaEventRecord(X.freed(b), stream_));
    if (i + static_cast<size_t>(S) < P.staged.size()) {
      stage(i + static_cast<size_t>(S));
      note_copies(1);
    }
  }
  // Slot copies nobody computed from this step (e.g. static's pinned experts) must land before a later
  // step reads the slot without waiting.
  if (slot_copies && P.loaded.empty()) CUDA_CHECK(cudaStreamWaitEvent(stream_, X.slots_done(), 0));

  join_cpu_experts();  // the host waits for the CPU experts only now, with the GPU's work queued
  if (kernel_path) {
    cuda::combine_expert_outputs(ws_.expert_out, ids_d, T, k, H, ws_.h, H, true, stream_);
  } else {
    cuda::scatter_combine_routed(ws_.ys, ws_.inv, rw_d, T, k, H, ws_.h, H, true, stream_);
  }
  for (int32_t e : plan_.active) launch_of_[static_cast<size_t>(e)] = -1;
  if (decode_forward_) {  // the layer's head ends here; its tail when the next MoE layer's routing is on the host
    layer_end_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
}

}  // namespace moe::cuda_backend
