#pragma once
// The CUDA backend's class, shared by cuda_backend.cpp (lifecycle, batches, buffers, graphs) and
// cuda_layers.cpp (the forward's math). Private to this folder.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cuda_backend.h"
#include "device_memory.h"
#include "device_weights.h"
#include "expert_pool.h"
#include "host_experts.h"
#include "prefetch_copies.h"
#include "moe/kernels.h"
#include "moe/offload/cpu_expert_executor.h"
#include "moe/quant/expert_format.h"
#include "moe_cuda_quant.h"
#include "moe/offload/miss_policy.h"

namespace moe::cuda_backend {

// What one forward looks like, derived on the host from the StepBatch.
struct StepPlan {
  int T = 0;                  // rows
  int R = 0;                  // logit rows
  int S = 0;                  // runs of rows (sequences) for the prefill attention
  bool fresh_prompts = false; // every sequence in the batch starts at position 0, its rows contiguous
  bool decode_rows = false;   // one row per sequence, each continuing its cache (graph-eligible)
  bool logits_identity = false;  // logit rows are exactly 0..T-1
  int max_len = 0;            // longest run (prefill attention grid)
  int max_ctx = 0;            // attention length bound (host): exact when eager, the graph's bound when captured
};

// Device arrays of one step, in the inputs region (layout depends on T, R, S only).
struct StepInputs {
  int64_t* cache_row = nullptr;    // [T] row of the layer cache each new token is written to
  int64_t* cache_start = nullptr;  // [T] first cache row of the row's sequence
  int32_t* tokens = nullptr;       // [T]
  int32_t* pos = nullptr;          // [T]
  int32_t* seq_len = nullptr;      // [T] pos + 1: keys the row attends to
  int32_t* logit_idx = nullptr;    // [R]
  int32_t* seq_start = nullptr;    // [S + 1] prefill runs
};

// Activation buffers, sized for up to `rows` rows and `logit_rows` logit rows.
struct Workspace {
  int rows = 0, logit_rows = 0, ctx = 0;
  DeviceMemory memory;
  float* h = nullptr;      // [T, hidden] fp32 residual stream
  bf16* x = nullptr;       // [T, hidden] normalised
  bf16* qkv = nullptr;     // [T, qkv_width] = [q | c_kv | k_pe]
  bf16* kvrows = nullptr;  // [T, kv_lora + rope] prefill: cache rows in batch order
  bf16* kv = nullptr;      // [T, heads * (nope + v)] prefill: kv_b output
  bf16* attn = nullptr;    // [T, heads * v]
  float* router = nullptr; // [T, n_experts]
  int32_t* ids = nullptr;  // [T, k]
  float* rw = nullptr;     // [T, k]
  bf16* gu = nullptr;      // gate|up outputs (dense, shared, routed prefill)
  bf16* hbuf = nullptr;    // silu(gate) * up
  bf16* xs = nullptr;      // [T * k, hidden] routed prefill: rows in expert order
  float* ys = nullptr;     // [T * k, hidden] routed prefill: expert outputs
  int32_t *offsets = nullptr, *sorted = nullptr, *inv = nullptr;
  void* group_ws = nullptr;
  size_t group_ws_bytes = 0;
  void* expert_ws = nullptr;
  size_t expert_ws_bytes = 0;
  void* attn_ws = nullptr;
  size_t attn_ws_bytes = 0;
  float* hl = nullptr;     // [R, hidden] gathered logit rows
  bf16* xl = nullptr;      // [R, hidden]
  float* logits = nullptr; // [R, vocab]
  int32_t* greedy = nullptr;  // [2R]: forward_argmax's tokens, then its non-finite counts
  int64_t* iota = nullptr; // [T] 0, 1, 2, ...
  // Offloading only: the step's routing, pointer table (bf16: gate/up/down pointers; int8/int4: blob
  // pointers) and launch masks (one upload per MoE layer), and the per-entry expert outputs that
  // several launches fill and one combine sums.
  void* offload_inputs = nullptr;
  size_t offload_inputs_bytes = 0;
  float* expert_out = nullptr;  // [min(T, kCublasRows - 1) * k, hidden]
  void* inputs = nullptr;  // StepInputs region
  size_t inputs_bytes = 0;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelConfig& c, const ModelWeights& w, const CudaBackendOptions& o);
  ~CudaBackend() override;

  const char* name() const override { return "cuda"; }
  void reset_sequences(const std::vector<int>& capacity) override;
  int sequence_length(int slot) const override { return length_.at(static_cast<size_t>(slot)); }
  // The slot's cache rows stay allocated; the next sequence there writes them again from position 0.
  void clear_sequence(int slot) override { length_.at(static_cast<size_t>(slot)) = 0; }
  void forward(const StepBatch& b, float* logits) override;
  bool forward_argmax(const StepBatch& b, int32_t* tokens, float* logits) override;
  void set_debug_hook(DebugHook hook) override { hook_ = std::move(hook); }
  void set_moe_interceptor(MoeInterceptor* i) override {
    interceptor_ = i;
    if (pool_) {
      pool_->forget();  // a new cache starts cold, and so do the slots
      resident_tables_ok_ = false;
      drop_graphs();    // resident-step graphs bake the interceptor's routing source (replay or router)
    }
    attach_prefetch(i);          // issue 12 prefetch (cuda_prefetch.cpp)
  }
  std::string device_info() const override;

  // Rows per chunk of the decode-attention kernel (its workspace is sized for this many rows).
  static constexpr int kAttnChunk = 64;
  // Largest decode batch replayed as a CUDA graph.
  static constexpr int kGraphMaxRows = 64;
  // Routed experts: grouped GEMV up to this many rows, the WMMA tile kernel below kCublasRows rows,
  // cuBLAS per expert (one host sync per layer for the group sizes) from there on. The cuBLAS path
  // issues 2 x 64 GEMMs per layer from the host: ~35 ms of launches over 26 layers, which a 512-token
  // prefill measured (H200, 2026-11-22: 48.7 ms vs 13.6 ms for 128 tokens on the tile kernel); the
  // tile kernel runs at ~170 TFLOP/s, so it wins below ~2048 rows and cuBLAS (~600) above.
  static constexpr int kGemvMaxRows = 32;
  static constexpr int kCublasRows = 2048;
  // Misses computed on the CPU (issue 12) in forwards of at most this many rows (decode batches; a
  // prefill forward fetches its misses: its experts see many tokens, where the GPU wins by far).
  static constexpr int kCpuMaxRows = 64;

 private:
  // forward() (tokens null) and forward_argmax(): true when the tokens came back and the logits did not.
  bool forward_impl(const StepBatch& b, float* logits, int32_t* tokens);
  // cuda_backend.cpp
  void check_batch(const StepBatch& b, std::vector<int>& new_length) const;
  StepPlan make_plan(const StepBatch& b) const;
  void ensure_workspace(int rows, int logit_rows);
  void ensure_cache(size_t rows);
  StepInputs upload_inputs(const StepBatch& b, const StepPlan& p);
  void run_graph(const StepPlan& p, const StepInputs& in);
  void drop_graphs();

  // cuda_layers.cpp
  void run_model(const StepPlan& p, const StepInputs& in, bool capturing);
  void attention(int layer, const StepPlan& p, const StepInputs& in);
  void ffn(int layer, const StepPlan& p, bool capturing);
  void mlp(const bf16* gu_w, const bf16* down_w, int d_ff, int rows);
  void routed_cublas(int layer, int rows);
  void intercept(int layer, int rows);
  void check_budget(const char* when) const;
  void sample_device_used();

  // cuda_offload_layer.cpp: the MoE block with offloaded routed experts (shared experts included)
  void moe_offloaded(int layer, int rows);
  void fetch_plan(int layer, int rows);
  void launch_expert_entries(int rows, const int32_t* mask, const float* rw, const bf16* const* table, const uint8_t* const* blobs);
  // cuda_resident_step.cpp: a decode forward with every routed expert in a slot (see that file's header).
  bool resident_step_possible(const StepPlan& p) const;
  void begin_resident_step(const StepPlan& p);
  void moe_resident(int layer, int rows);
  void fetch_resident_plans();
  void end_resident_step(int rows);
  // cuda_cpu_experts.cpp: the misses the policy sends to the CPU (removed from P.loaded / P.staged,
  // their slot copies turned into background fills), their jobs started; and the results joined.
  bool cpu_path(int rows) const;
  double copy_backlog_ms();  // the demand copies' backlog (copy_free_at_ms_, corrected by copy_tail_)
  void take_copy_backlog(int mi);  // layer_backlog_ for layer mi's miss rule, when its routing is on the host
  void choose_cpu_experts(int layer, int mi, int rows, const offload::MissPolicy& policy);
  void start_cpu_experts(int rows);
  void issue_fills(int mi);
  void join_cpu_experts();
  void note_copies(int count);
  void note_copy_ms(double ms);
  // cuda_prefetch.cpp (issue 12 prefetch): see that file's header comment.
  void attach_prefetch(MoeInterceptor* i);
  bool prefetching() const;
  void issue_prefetch_orders();
  void prefetch_gate(int layer, int rows);
  void prefetch_gate_deliver(int layer, int rows);
  bool prefetch_place(int mi, LayerPlacement& P);
  void prefetch_join_loaded(LayerPlacement& P);
  void prefetch_release();
  std::string prefetch_info() const;
  std::string quantized_file_info() const;
  void dump_f32(const char* name, int layer, const float* d, int rows, int cols);
  void dump_bf16(const char* name, int layer, const bf16* d, int rows, int cols);

  const ModelConfig& c_;
  CudaBackendOptions opt_;
  DeviceWeights* w_ = nullptr;  // owned (unique_ptr would need the full type in every TU)
  RopeTable rope_;
  float scale_ = 1.f;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceMemory cublas_ws_;
  DeviceMemory rope_inv_freq_;
  bool gemv_ok_ = false;

  // Sequences: slot s owns cache rows [base_[s], base_[s] + capacity_[s]) of every layer.
  std::vector<int> capacity_, length_;
  std::vector<int64_t> base_;
  size_t cache_rows_ = 0;  // allocated rows per layer
  DeviceMemory cache_;     // [layers, cache_rows_, kv_lora + rope] bf16
  int ctx_bound_ = 0;      // attention bound baked into graphs: max capacity rounded up to 256

  Workspace ws_;
  PinnedMemory inputs_host_, logits_host_, offsets_host_;
  // Graphs by (rows, ctx bound); a key runs eagerly once before it is captured (cuBLAS picks and
  // loads its kernels outside the capture). Any reallocation drops them all.
  std::map<std::pair<int, int>, cudaGraphExec_t> graphs_;
  std::set<std::pair<int, int>> seen_;

  // Offloading (opt_.offload_slots >= 0): routed experts in pinned host memory, slots on the GPU.
  std::unique_ptr<HostExperts> host_experts_;
  std::unique_ptr<ExpertPool> pool_;
  // Issue 13: one expert's blob (bf16 or quantized); quantized experts run the q kernels (qlayout_), and
  // the >= kCublasRows path dequantizes each expert into dequant_ ([3 d_ff, hidden] bf16) for its GEMMs.
  quant::ExpertLayout expert_layout_;
  bool quant_experts_ = false;
  cuda::QuantLayout qlayout_{};
  DeviceMemory dequant_;
  std::vector<int> moe_index_;  // model layer -> MoE layer index, -1 for dense layers
  LayerPlacement placement_;
  std::vector<int32_t> cached_slot_;
  std::vector<int32_t> launch_of_;  // [E] launch index of each active expert this layer
  PinnedMemory offload_host_;       // host side of Workspace::offload_inputs
  uint64_t device_used_peak_ = 0;   // cudaMemGetInfo: total - free, sampled after allocations and forwards

  // CPU experts (issue 12). Host x of the layer, the compact CPU rows (inputs, outputs, entries, weights)
  // and their device copy; sized for kCpuMaxRows rows once, on first use.
  std::unique_ptr<offload::CpuExpertExecutor> cpu_exec_;
  PinnedMemory x_host_;           // [kCpuMaxRows, hidden] bf16: the layer's MoE input
  PinnedMemory cpu_out_host_;     // [kCpuMaxRows * k, hidden] fp32 outputs, then [kCpuMaxRows * k] int32 entries
  DeviceMemory cpu_out_dev_;      // the same layout on the device
  std::vector<float> cpu_x_, cpu_scale_;   // [rows, hidden] fp32 inputs, [rows] routing weights
  std::vector<offload::CpuExpertJob> cpu_jobs_;
  std::vector<int32_t> cpu_experts_;       // this layer's CPU experts, in decision order
  std::vector<int32_t> fill_slot_, fill_expert_;  // background fills of CPU experts the cache keeps
  bool fill_late_ = false;                 // a fill overwrites an expert this step still reads
  int cpu_rows_ = 0;                       // compact rows of this layer's CPU jobs
  std::vector<uint8_t> is_miss_;           // [E] scratch
  std::vector<int32_t> miss_ids_, miss_tokens_;
  std::vector<offload::MissDecision> decisions_;
  std::vector<double> cpu_free_;
  // The copy engine's backlog as the cost model sees it (host clock, ms), corrected to 0 whenever the
  // last copy issued has finished (copy_tail_).
  double copy_free_at_ms_ = 0;
  // What the miss rule of the current layer takes as the copy backlog (miss_policy.h CopyBacklog: the demand
  // copies' backlog plus what prefetches put on the stream ahead of the layer's misses), and scratch.
  offload::CopyBacklog layer_backlog_;
  PrefetchCopies::Pending pf_pending_;
  // Host clock (ms) when this layer's routing reached the host; and whether the forward is a decode step.
  double plan_on_host_ms_ = 0;
  double layer_end_ms_ = 0;  // decode: when the host finished the last MoE layer (0: none yet this forward)
  bool decode_forward_ = false;
  cudaEvent_t copy_tail_ = nullptr;
  std::vector<cudaEvent_t> fill_done_;     // [moe layers] the layer's last background fills
  // MOE_TIME_EXPERT_LAUNCHES=1, a diagnostic: CUDA events around a decode forward's routed-expert launches
  // (each layer's resident and loaded launch), their GPU time summed at the forward's end into
  // counters.decode_expert_gpu_ms, so the simulator's launch table can be compared with the kernels inside
  // a step. Off by default (the events add host work).
  bool time_expert_launches_ = false;
  std::vector<cudaEvent_t> launch_events_;  // pairs: [2i] before launch i, [2i + 1] after it
  size_t launch_events_used_ = 0;
  void mark_expert_launch();      // records the next event of the current pair on the compute stream
  void collect_expert_launches();  // after the forward's synchronisation: sums and resets the pairs
  std::vector<uint8_t> fill_pending_;

  // Resident steps (cuda_resident_step.cpp): per MoE layer the slot pointer tables ([3E] bf16 gate/up/down,
  // then [E] blobs) and the step's routing ([kGraphMaxRows * k] ids, then weights), on the device and in
  // pinned host memory; whether the tables match the slots; whether this forward is one; whether the
  // interceptor substitutes the routing (replay: uploaded before the forward) or keeps the router's (brought
  // back after it).
  DeviceMemory resident_dev_;
  PinnedMemory resident_host_;
  bool resident_tables_ok_ = false;
  bool resident_now_ = false;
  bool resident_replay_ = false;
  size_t resident_table_bytes() const;
  size_t resident_plan_bytes() const;

  // Prefetch (issue 12): copies, the copy-stream lock held from a layer's placement to its demand copies,
  // next-gate's device buffers (logits | ids | weights) and host ids, scratch.
  std::unique_ptr<PrefetchCopies> prefetch_;
  int prefetch_pieces_ = 0, prefetch_in_flight_ = 0;
  std::unique_lock<std::mutex> prefetch_link_;
  int gate_layer_ = -1;
  DeviceMemory gate_dev_;
  PinnedMemory gate_host_;
  std::vector<uint8_t> pf_in_step_, pf_late_;
  std::vector<int32_t> pf_late_experts_;

  DebugHook hook_;
  MoeInterceptor* interceptor_ = nullptr;
  MoePlan plan_;
  std::vector<float> dump_buf_;
};

}  // namespace moe::cuda_backend
