// Missed experts computed on the CPU (issue 12; Fiddler's idea), inside the offloaded MoE layer
// (cuda_offload_layer.cpp):
//   1. fetch_plan also brings the layer's MoE input x to pinned host memory (one small copy, in the
//      same synchronisation as the routing);
//   2. choose_cpu_experts: for the misses ExpertPool::place found (loaded: the cache admitted them;
//      staged: bypassed), the miss rule (moe/offload/miss_policy.h, the simulator's rule) decides per
//      expert: fetch, or compute on the CPU. CPU experts leave the GPU launches; a CPU expert the cache
//      admitted still gets its slot filled, as a background copy issued after the layer's demand copies
//      (issue_fills), so the cache's contents stay what the policy decided;
//   3. start_cpu_experts: the jobs (each expert's token rows, fp32) go to the CpuExpertExecutor, which
//      computes them from the pinned host copy while the host goes on queuing the GPU's work (shared
//      experts, hits, fetched misses);
//   4. join_cpu_experts: after the GPU work is queued the host waits for the CPU jobs, copies their
//      outputs (already multiplied by the routing weights, as the GPU kernels do) to the device, and
//      scatters them into the per-entry buffer before the one combine.
#include <algorithm>
#include <chrono>
#include <string>

#include "cuda_backend_impl.h"
#include "cuda_check.h"
#include "moe/error.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda_backend {

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

LinearIsa cpu_expert_isa() { return isa_supported(LinearIsa::Avx512Bf16) ? LinearIsa::Avx512Bf16 : best_exact_isa(); }

// `--cpu-rounding gpu-order` (miss_policy.h) holds only where the GPU's twin is the decode kernel and the CPU
// has the vector version (the scalar one is a test reference, too slow to serve); quantized experts round
// their own way on both sides, so the option does not apply to them.
offload::CpuExpertRounding cpu_expert_rounding(const offload::MissPolicy& policy, bool quantized, bool gemv_ok) {
  if (policy.rounding != offload::CpuExpertRounding::GpuOrder) return offload::CpuExpertRounding::Fast;
  if (quantized) throw Error("option --cpu-rounding gpu-order: only for bf16 experts (--expert-dtype bf16)");
  if (!gemv_ok) throw Error("option --cpu-rounding gpu-order: this model's expert shapes do not run the GPU's decode kernel (hidden % 256, d_ff % 8)");
  if (!gpu_order_vectorized()) throw Error("option --cpu-rounding gpu-order: needs a CPU with AVX-512BW");
  return offload::CpuExpertRounding::GpuOrder;
}

}  // namespace

bool CudaBackend::cpu_path(int rows) const {
  if (!interceptor_ || !pool_) return false;
  const offload::MissPolicy* p = interceptor_->miss_policy();
  if (p == nullptr || p->mode == offload::MissMode::Fetch || rows > kCpuMaxRows || rows >= kCublasRows) return false;
  // gpu-order reproduces the decode kernel, which the GPU runs up to kGemvMaxRows rows; from 33 rows it runs the
  // grouped tile kernel (another order), so a CPU expert there would not have the GPU's bits: fetch instead.
  // (H100, 2026-12-07: a 40-token batch-1 prefill with --cpu-fill background put experts on the CPU and its
  // tokens left the all-resident ones; reports/bench/h100-2026-12-07/README.md.)
  return p->rounding != offload::CpuExpertRounding::GpuOrder || rows <= kGemvMaxRows;
}

void CudaBackend::note_copies(int count) {
  if (count <= 0 || !interceptor_) return;
  const offload::MissPolicy* p = interceptor_->miss_policy();
  note_copy_ms(count * (p ? p->costs.copy_ms : 0.0));
}

// Copies just put on the copy stream that take `ms` by the cost model.
void CudaBackend::note_copy_ms(double ms) {
  if (ms <= 0 || !pool_) return;
  copy_free_at_ms_ = std::max(copy_free_at_ms_, now_ms()) + ms;
  CUDA_CHECK(cudaEventRecord(copy_tail_, pool_->copy_stream()));
}

// The copy engine's backlog: none once the last copy issued has landed, else the model's estimate.
double CudaBackend::copy_backlog_ms() {
  double backlog = std::max(0.0, copy_free_at_ms_ - now_ms());
  const cudaError_t q = cudaEventQuery(copy_tail_);
  if (q == cudaSuccess) backlog = 0.0;
  else if (q != cudaErrorNotReady) CUDA_CHECK(q);
  return backlog;
}

// The copy backlog layer mi's miss rule takes (miss_policy.h CopyBacklog), once its routing is on the host:
// the demand copies' backlog plus the prefetch pieces in flight (they are on the same FIFO stream, after or
// before those copies, so the two add up) and, per expert, the prefetch pieces still queued (a late hit's
// are promoted ahead of the misses). With prefetch the copy-stream lock is taken here and held until the
// layer's demand copies are issued (prefetch_release), so no scheduler piece slips in after the estimate.
void CudaBackend::take_copy_backlog(int mi) {
  layer_backlog_.ms = copy_backlog_ms();
  layer_backlog_.late_prefetch_ms.clear();
  if (!prefetching()) return;
  if (!prefetch_link_.owns_lock()) prefetch_link_ = std::unique_lock<std::mutex>(prefetch_->link());
  const int E = c_.n_routed_experts;
  prefetch_->pending(mi, E, pf_pending_);
  const offload::MissPolicy* p = interceptor_->miss_policy();
  const double piece_ms = (p ? p->costs.copy_ms : 0.0) / prefetch_->pieces();
  layer_backlog_.ms += pf_pending_.pieces_in_flight * piece_ms;
  layer_backlog_.late_prefetch_ms.resize(static_cast<size_t>(E));
  for (int e = 0; e < E; ++e) layer_backlog_.late_prefetch_ms[static_cast<size_t>(e)] = pf_pending_.queued_pieces[static_cast<size_t>(e)] * piece_ms;
}

void CudaBackend::choose_cpu_experts(int l, int mi, int T, const offload::MissPolicy& policy) {
  const int E = c_.n_routed_experts, H = c_.hidden_size, k = c_.num_experts_per_tok;
  LayerPlacement& P = placement_;
  cpu_experts_.clear();
  fill_slot_.clear();
  fill_expert_.clear();
  fill_late_ = false;
  cpu_rows_ = 0;
  if (cpu_exec_) cpu_exec_->drain();  // a forward that failed mid-layer may have left jobs running
  if (P.loaded.empty() && P.staged.empty()) return;

  // First use: the executor in the policy's shape and the buffers, sized once.
  const offload::CpuExpertRounding rounding = cpu_expert_rounding(policy, quant_experts_, gemv_ok_);
  if (!cpu_exec_ || cpu_exec_->workers() != policy.workers || cpu_exec_->threads_per_worker() != policy.threads_per_worker ||
      cpu_exec_->rounding() != rounding) {
    cpu_exec_.reset();
    cpu_exec_ = std::make_unique<offload::CpuExpertExecutor>(policy.workers, policy.threads_per_worker, cpu_expert_isa(), kCpuMaxRows, H,
                                                            c_.moe_intermediate_size, policy.spin_us, rounding);
  }
  const size_t max_entries = static_cast<size_t>(kCpuMaxRows) * k;
  if (cpu_out_dev_.bytes() == 0) {
    const size_t bytes = max_entries * H * sizeof(float) + max_entries * sizeof(int32_t);
    cpu_out_dev_ = DeviceMemory(bytes);
    check_budget("for the CPU experts' output buffer");
    cpu_out_host_ = PinnedMemory(bytes);
    cpu_x_.resize(max_entries * H);
    cpu_scale_.resize(max_entries);
    is_miss_.assign(static_cast<size_t>(E), 0);
  }

  // The misses in ascending expert order (the simulator's request order), with their token counts.
  for (int32_t e : P.loaded) is_miss_[static_cast<size_t>(e)] = 1;
  for (int32_t e : P.staged) is_miss_[static_cast<size_t>(e)] = 2;
  miss_ids_.clear();
  miss_tokens_.clear();
  for (size_t i = 0; i < plan_.active.size(); ++i) {
    const int32_t e = plan_.active[i];
    if (!is_miss_[static_cast<size_t>(e)]) continue;
    miss_ids_.push_back(e);
    miss_tokens_.push_back(plan_.group_begin[i + 1] - plan_.group_begin[i]);
  }
  double backlog = 0.0;
  if (policy.admit) {
    backlog = layer_backlog_.for_experts(plan_.active.data(), static_cast<int>(plan_.active.size()));
    cpu_free_.assign(static_cast<size_t>(policy.workers), 0.0);
    offload::decide_misses(policy, backlog, cpu_free_, miss_tokens_, decisions_, interceptor_->cpu_estimate_factor());
  } else {
    // --cpu-fill none: the controller decided this layer's misses in on_plan, before the cache admitted
    // the fetched ones; its CPU experts were not admitted, so they are among the staged ones. A physical
    // miss it saw as a hit (a prefetch still in flight) is fetched, as is every miss of a forward it
    // decided nothing for (prefill).
    const offload::LayerMissDecisions* md = interceptor_->miss_decisions(plan_.layer);
    static const offload::LayerMissDecisions none;
    const offload::LayerMissDecisions& d = md ? *md : none;
    size_t w = 0;
    decisions_.clear();
    for (size_t i = 0; i < miss_ids_.size(); ++i) {
      const int32_t e = miss_ids_[i];
      const auto it = std::lower_bound(d.experts.begin(), d.experts.end(), e);
      if (it == d.experts.end() || *it != e) {
        is_miss_[static_cast<size_t>(e)] = 0;  // fetched
        continue;
      }
      const size_t j = static_cast<size_t>(it - d.experts.begin());
      if (d.tokens[j] != miss_tokens_[i]) throw Error("CPU experts: the controller's token count of expert " + std::to_string(e) + " differs (internal error)");
      miss_ids_[w] = e;
      miss_tokens_[w] = miss_tokens_[i];
      decisions_.push_back(d.decisions[j]);
      ++w;
    }
    miss_ids_.resize(w);
    miss_tokens_.resize(w);
    backlog = d.copy_backlog_ms;
    for (size_t j = 0; j < d.experts.size(); ++j) {
      if (d.decisions[j].on_cpu && !std::binary_search(miss_ids_.begin(), miss_ids_.end(), d.experts[j])) {
        throw Error("CPU experts: expert " + std::to_string(d.experts[j]) + " was put on the CPU but is not a miss here (internal error)");
      }
    }
  }

  offload::MissLog* log = interceptor_->miss_log();
  for (size_t i = 0; i < miss_ids_.size(); ++i) {
    const int32_t e = miss_ids_[i];
    const offload::MissDecision& d = decisions_[i];
    if (log) {
      log->step.push_back(static_cast<int32_t>(pool_->counters.forwards));
      log->layer.push_back(l);
      log->expert.push_back(e);
      log->tokens.push_back(miss_tokens_[i]);
      log->copy_backlog_ms.push_back(static_cast<float>(backlog));
      log->via_copy_ms.push_back(static_cast<float>(d.via_copy_ms));
      log->via_cpu_ms.push_back(static_cast<float>(d.via_cpu_ms));
      log->cpu_measured_ms.push_back(-1.f);  // filled when the job has run
      log->cpu_factor.push_back(static_cast<float>(interceptor_->cpu_estimate_factor()));
      log->on_cpu.push_back(d.on_cpu ? 1 : 0);
      log->first_of_layer.push_back(i == 0 ? 1 : 0);
    }
    if (d.on_cpu) cpu_experts_.push_back(e);
    else is_miss_[static_cast<size_t>(e)] = 0;  // fetched: stays in loaded / staged
  }
  if (cpu_experts_.empty()) {
    for (int32_t e : miss_ids_) is_miss_[static_cast<size_t>(e)] = 0;
    return;
  }

  // CPU experts leave the GPU's lists; the slot copies of those the cache admitted become fills.
  auto keep_gpu = [&](std::vector<int32_t>& v) {
    v.erase(std::remove_if(v.begin(), v.end(), [&](int32_t e) { return is_miss_[static_cast<size_t>(e)] != 0; }), v.end());
  };
  auto move_fills = [&](std::vector<int32_t>& slots, std::vector<int32_t>& experts, bool late) {
    size_t w = 0;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (is_miss_[static_cast<size_t>(experts[i])] == 1) {
        if (policy.fill) {
          fill_slot_.push_back(slots[i]);
          fill_expert_.push_back(experts[i]);
          fill_late_ = fill_late_ || late;
        } else {
          pool_->mark_empty(mi, slots[i]);  // lazy: copied when the GPU needs it (a later hit finds it in loaded)
        }
      } else {
        slots[w] = slots[i];
        experts[w] = experts[i];
        ++w;
      }
    }
    slots.resize(w);
    experts.resize(w);
  };
  move_fills(P.copy_slot, P.copy_expert, false);
  move_fills(P.late_slot, P.late_expert, true);
  keep_gpu(P.loaded);
  keep_gpu(P.staged);
  // The staging ring is assigned by position among the staged experts that remain.
  for (size_t i = 0; i < P.staged.size(); ++i) {
    P.source[static_cast<size_t>(P.staged[i])] = pool_->staging_buffer(static_cast<int>(i % static_cast<size_t>(pool_->staging())));
  }
  for (int32_t e : cpu_experts_) P.source[static_cast<size_t>(e)] = nullptr;
  for (int32_t e : miss_ids_) is_miss_[static_cast<size_t>(e)] = 0;
  (void)T;
}

void CudaBackend::start_cpu_experts(int T) {
  if (cpu_experts_.empty()) return;
  const int H = c_.hidden_size, k = c_.num_experts_per_tok, dff = c_.moe_intermediate_size;
  const int mi = moe_index_[static_cast<size_t>(plan_.layer)];
  const size_t max_entries = static_cast<size_t>(kCpuMaxRows) * k;
  float* out = cpu_out_host_.as<float>();
  int32_t* entries = reinterpret_cast<int32_t*>(out + max_entries * H);
  const uint16_t* x = x_host_.as<uint16_t>();
  cpu_jobs_.clear();
  int r = 0;
  for (int32_t e : cpu_experts_) {
    const auto it = std::lower_bound(plan_.active.begin(), plan_.active.end(), e);
    const size_t gi = static_cast<size_t>(it - plan_.active.begin());
    const int r0 = r;
    for (int p = plan_.group_begin[gi]; p < plan_.group_begin[gi + 1]; ++p) {
      const int t = plan_.group_token[static_cast<size_t>(p)];
      int entry = -1;
      for (int j = 0; j < k; ++j) {
        if (plan_.expert[static_cast<size_t>(t) * k + j] == e) {
          entry = t * k + j;
          break;
        }
      }
      if (entry < 0) throw Error("CPU experts: token " + std::to_string(t) + " does not route to expert " + std::to_string(e) + " (internal error)");
      const uint16_t* xr = x + static_cast<size_t>(t) * H;
      float* xf = cpu_x_.data() + static_cast<size_t>(r) * H;
      for (int c = 0; c < H; ++c) xf[c] = bf16_to_f32(xr[c]);  // moe/tensor.h
      entries[r] = entry;
      cpu_scale_[static_cast<size_t>(r)] = plan_.weight[static_cast<size_t>(entry)];
      ++r;
    }
    offload::CpuExpertJob job;
    if (quant_experts_) {  // issue 13: the CPU computes from the same quantized blob the GPU would copy
      job.blob = host_experts_->expert(mi, e);
      job.layout = &host_experts_->layout();
    } else {
      const uint16_t* base = reinterpret_cast<const uint16_t*>(host_experts_->expert(mi, e));
      job.weights.gate = Matrix{base, DType::BF16, dff, H};
      job.weights.up = Matrix{base + static_cast<size_t>(dff) * H, DType::BF16, dff, H};
      job.weights.down = Matrix{base + static_cast<size_t>(2) * dff * H, DType::BF16, H, dff};
    }
    job.x = cpu_x_.data() + static_cast<size_t>(r0) * H;
    job.rows = r - r0;
    job.y = out + static_cast<size_t>(r0) * H;
    job.row_scale = cpu_scale_.data() + r0;
    cpu_jobs_.push_back(job);
  }
  cpu_rows_ = r;
  (void)T;
  pool_->counters.cpu_experts += cpu_experts_.size();
  pool_->counters.cpu_rows += static_cast<uint64_t>(r);
  cpu_exec_->start(&cpu_jobs_);
}

void CudaBackend::issue_fills(int mi) {
  if (fill_slot_.empty()) return;
  ExpertPool& X = *pool_;
  const cudaStream_t cs = X.copy_stream();
  if (fill_late_) {
    // A fill overwrites an expert this step's resident launch reads: after that launch.
    CUDA_CHECK(cudaEventRecord(X.resident_done(), stream_));
    CUDA_CHECK(cudaStreamWaitEvent(cs, X.resident_done(), 0));
  }
  const size_t eb = host_experts_->expert_bytes();
  for (size_t i = 0; i < fill_slot_.size(); ++i) {
    CUDA_CHECK(cudaMemcpyAsync(X.slot(mi, fill_slot_[i]), host_experts_->expert(mi, fill_expert_[i]), eb, cudaMemcpyHostToDevice, cs));
    X.counters.bytes += eb;
    ++X.counters.fill_copies;
  }
  CUDA_CHECK(cudaEventRecord(fill_done_[static_cast<size_t>(mi)], cs));
  fill_pending_[static_cast<size_t>(mi)] = 1;
  note_copies(static_cast<int>(fill_slot_.size()));
}

void CudaBackend::join_cpu_experts() {
  if (cpu_experts_.empty()) return;
  const int H = c_.hidden_size, k = c_.num_experts_per_tok;
  const auto t0 = std::chrono::steady_clock::now();
  cpu_exec_->wait();  // rethrows a job's error: the forward fails with it
  pool_->counters.cpu_wait_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  pool_->counters.cpu_start_latency_ms += cpu_exec_->last_start_latency_ms();
  pool_->counters.cpu_join_latency_ms += cpu_exec_->last_join_latency_ms();
  offload::MissLog* log = interceptor_->miss_log();
  for (size_t i = 0; i < cpu_jobs_.size(); ++i) {
    pool_->counters.cpu_ms += cpu_jobs_[i].ms;
    interceptor_->on_cpu_job(cpu_jobs_[i].rows, cpu_jobs_[i].ms);  // the rule's CPU correction, in decision order
    if (log) {
      // the job's decision row: the last rows of the log hold this layer's decisions
      for (size_t row = log->rows(); row-- > 0;) {
        if (log->expert[row] == cpu_experts_[i] && log->on_cpu[row] && log->cpu_measured_ms[row] < 0) {
          log->cpu_measured_ms[row] = static_cast<float>(cpu_jobs_[i].ms);
          break;
        }
        if (log->first_of_layer[row]) break;
      }
    }
  }
  const size_t max_entries = static_cast<size_t>(kCpuMaxRows) * k;
  const size_t rows = static_cast<size_t>(cpu_rows_);
  float* out_h = cpu_out_host_.as<float>();
  float* out_d = cpu_out_dev_.as<float>();
  int32_t* ent_h = reinterpret_cast<int32_t*>(out_h + max_entries * H);
  int32_t* ent_d = reinterpret_cast<int32_t*>(out_d + max_entries * H);
  CUDA_CHECK(cudaMemcpyAsync(out_d, out_h, rows * H * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(ent_d, ent_h, rows * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  cuda::scatter_entry_rows(out_d, ent_d, cpu_rows_, H, ws_.expert_out, stream_);
}

}  // namespace moe::cuda_backend
