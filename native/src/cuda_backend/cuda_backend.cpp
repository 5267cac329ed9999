// The CUDA backend's lifecycle: weights upload, sequences and their caches, buffers that grow only
// when a generation needs more, per-step inputs (one host-to-device copy), decode steps replayed as
// CUDA graphs, logits back to the host (one device-to-host copy, one synchronisation per step).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include "cuda_backend_impl.h"
#include "cuda_check.h"
#include "moe/error.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda_backend {

namespace {
constexpr size_t kCublasWorkspace = size_t(32) << 20;

int round_up(int v, int m) { return (v + m - 1) / m * m; }

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) o += ch;
  }
  return o;
}
}  // namespace

CudaBackend::CudaBackend(const ModelConfig& c, const ModelWeights& w, const CudaBackendOptions& o) : c_(c), opt_(o) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw Error(std::string("device 'cuda': no usable CUDA GPU (") + (e != cudaSuccess ? cudaGetErrorString(e) : "none found") + ")");
  }
  if (o.device < 0 || o.device >= count) throw Error("device 'cuda': GPU " + std::to_string(o.device) + " does not exist");
  const char* env = std::getenv("MOE_CUDA_GRAPHS");
  if (env != nullptr && std::string(env) == "0") opt_.use_graphs = false;
  const char* timing = std::getenv("MOE_TIME_EXPERT_LAUNCHES");
  time_expert_launches_ = timing != nullptr && std::string(timing) == "1";
  CUDA_CHECK(cudaSetDevice(o.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUBLAS_CHECK(cublasCreate(&cublas_));
  cublas_ws_ = DeviceMemory(kCublasWorkspace);
  // The stream first (setting it resets the workspace), then an explicit workspace: cuBLAS then
  // allocates nothing inside a graph capture. The launchers never switch the stream again.
  CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_ws_.get(), kCublasWorkspace));
  const bool offload = opt_.offload_slots >= 0 && c.n_routed_experts > 0;
  quant_experts_ = opt_.expert_dtype != quant::ExpertDType::BF16;
  if (quant_experts_) {
    // Checked before the upload: a refusal comes at once.
    const std::string dt = quant::expert_dtype_name(opt_.expert_dtype);
    if (!offload) throw Error("expertDtype '" + dt + "' needs the routed experts offloaded (cache or gpuMemory)");
    expert_layout_ = quant::expert_layout(opt_.expert_dtype, c.hidden_size, c.moe_intermediate_size, opt_.expert_group);
    qlayout_ = cuda::to_quant_layout(expert_layout_);
    if (!cuda::expert_ffn_q_supported(qlayout_, c.n_routed_experts)) {
      throw Error("expertDtype '" + dt + "': the quantized GPU expert kernels do not support this model's shape (hidden " +
                  std::to_string(c.hidden_size) + ", moe_intermediate_size " + std::to_string(c.moe_intermediate_size) + ", " +
                  std::to_string(c.n_routed_experts) + " experts" +
                  (opt_.expert_dtype == quant::ExpertDType::INT4 ? ", group " + std::to_string(opt_.expert_group) : std::string()) + ")");
    }
  } else if (offload) {
    expert_layout_ = quant::expert_layout(quant::ExpertDType::BF16, c.hidden_size, c.moe_intermediate_size);
  }
  w_ = new DeviceWeights(c, w, offload);
  moe_index_.assign(static_cast<size_t>(c.num_hidden_layers), -1);
  std::vector<int> moe_layers;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    if (!w_->layers[static_cast<size_t>(l)].moe) continue;
    moe_index_[static_cast<size_t>(l)] = static_cast<int>(moe_layers.size());
    moe_layers.push_back(l);
  }
  if (offload) {
    // The device pool first: a GPU too small for it fails before the long host copy.
    pool_ = std::make_unique<ExpertPool>(static_cast<int>(moe_layers.size()), opt_.offload_slots, opt_.staging_buffers,
                                         c.n_routed_experts, expert_layout_.bytes);
    if (quant_experts_) dequant_ = DeviceMemory(static_cast<size_t>(3) * c.moe_intermediate_size * c.hidden_size * sizeof(bf16));
    check_budget("after the weights and the expert pool");
    host_experts_ = std::make_unique<HostExperts>(c, w, moe_layers, expert_layout_, opt_.quantized_file.path.empty() ? nullptr : &opt_.quantized_file);
    cached_slot_.assign(static_cast<size_t>(c.n_routed_experts), -1);
    launch_of_.assign(static_cast<size_t>(c.n_routed_experts), -1);
    CUDA_CHECK(cudaEventCreateWithFlags(&copy_tail_, cudaEventDisableTiming));
    fill_done_.resize(moe_layers.size());
    for (cudaEvent_t& e : fill_done_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    fill_pending_.assign(moe_layers.size(), 0);
  }
  rope_ = make_rope_table(c);
  scale_ = attention_softmax_scale(c);
  rope_inv_freq_ = DeviceMemory(rope_.inv_freq.size() * sizeof(float));
  CUDA_CHECK(cudaMemcpy(rope_inv_freq_.get(), rope_.inv_freq.data(), rope_.inv_freq.size() * sizeof(float), cudaMemcpyHostToDevice));
  gemv_ok_ = c.n_routed_experts > 0 && cuda::expert_ffn_decode_supported(c.hidden_size, c.moe_intermediate_size, c.n_routed_experts);
  offsets_host_ = PinnedMemory(sizeof(int32_t) * (static_cast<size_t>(std::max(c.n_routed_experts, 1)) + 1));
  sample_device_used();
}

void CudaBackend::check_budget(const char* when) const {
  if (opt_.gpu_budget_bytes == 0) return;
  const DeviceMemoryStats st = device_memory_stats();
  if (st.current <= opt_.gpu_budget_bytes) return;
  const double gib = 1.0 / (1 << 30);
  std::ostringstream o;
  o.precision(2);
  o << std::fixed << "GPU memory budget exceeded " << when << ": the engine holds " << st.current * gib << " GiB of "
    << opt_.gpu_budget_bytes * gib << " GiB (weights " << w_->bytes() * gib << ", expert pool "
    << (pool_ ? pool_->device_bytes() : 0) * gib;
  if (dequant_.bytes() > 0) o << ", dequantized-expert scratch " << dequant_.bytes() * gib;
  o << ", KV cache " << cache_.bytes() * gib << ", workspace "
    << ws_.memory.bytes() * gib << "); give a larger --gpu-memory or fewer cache slots, a smaller batch or shorter sequences";
  throw Error(o.str());
}

void CudaBackend::sample_device_used() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  device_used_peak_ = std::max<uint64_t>(device_used_peak_, total_b - free_b);
}

CudaBackend::~CudaBackend() {
  drop_graphs();
  cpu_exec_.reset();  // joins the CPU workers
  if (pool_) cudaStreamSynchronize(pool_->copy_stream());
  for (cudaEvent_t e : fill_done_) cudaEventDestroy(e);
  for (cudaEvent_t e : launch_events_) cudaEventDestroy(e);
  if (copy_tail_) cudaEventDestroy(copy_tail_);
  delete w_;
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::drop_graphs() {
  for (auto& kv : graphs_) cudaGraphExecDestroy(kv.second);
  graphs_.clear();
  seen_.clear();
}

void CudaBackend::reset_sequences(const std::vector<int>& capacity) {
  size_t total = 0;
  int longest = 0;
  for (int cap : capacity) {
    if (cap <= 0) throw Error("sequence capacity must be > 0");
    total += static_cast<size_t>(cap);
    longest = std::max(longest, cap);
  }
  capacity_ = capacity;
  length_.assign(capacity.size(), 0);
  base_.resize(capacity.size());
  int64_t at = 0;
  for (size_t s = 0; s < capacity.size(); ++s) {
    base_[s] = at;
    at += capacity[s];
  }
  ensure_cache(total);
  check_budget("for the KV cache");
  const int bound = round_up(std::max(longest, 1), 256);
  if (bound != ctx_bound_) {
    ctx_bound_ = bound;
    ws_.ctx = 0;  // the attention workspace depends on the bound: re-plan on the next forward
  }
}

void CudaBackend::ensure_cache(size_t rows) {
  if (rows <= cache_rows_) return;
  drop_graphs();
  cache_ = DeviceMemory();  // free first: the old cache holds nothing the new generation needs
  const size_t width = static_cast<size_t>(c_.kv_cache_width());
  cache_ = DeviceMemory(rows * width * c_.num_hidden_layers * sizeof(bf16));
  cache_rows_ = rows;
}

void CudaBackend::ensure_workspace(int rows, int logit_rows) {
  if (rows <= ws_.rows && logit_rows <= ws_.logit_rows && ws_.ctx == ctx_bound_) return;
  drop_graphs();
  const int T = std::max(rows, ws_.rows), R = std::max(logit_rows, ws_.logit_rows);
  const int H = c_.hidden_size, heads = c_.num_attention_heads, E = std::max(c_.n_routed_experts, 1);
  const int k = std::max(c_.num_experts_per_tok, 1), dff = c_.moe_intermediate_size;
  const size_t TK = static_cast<size_t>(T) * k;
  const size_t gu_elems = std::max({static_cast<size_t>(T) * 2 * c_.intermediate_size,
                                    static_cast<size_t>(T) * 2 * w_->shared_ff,
                                    T >= kCublasRows ? TK * 2 * dff : 0});
  const size_t h_elems = std::max({static_cast<size_t>(T) * c_.intermediate_size, static_cast<size_t>(T) * w_->shared_ff,
                                   T >= kCublasRows ? TK * dff : 0});
  size_t expert_ws = 0;
  if (c_.n_routed_experts > 0) {
    if (gemv_ok_) expert_ws = cuda::expert_ffn_decode_workspace_bytes(std::min(T, kGemvMaxRows), k, E, H, dff);
    expert_ws = std::max(expert_ws, cuda::expert_ffn_workspace_bytes(std::min(T, kCublasRows), k, E, H, dff));
    if (quant_experts_) {  // the q kernels: decode up to kGemvMaxRows rows, grouped below kCublasRows
      expert_ws = std::max(expert_ws, cuda::expert_ffn_decode_q_workspace_bytes(std::min(T, kGemvMaxRows), k, E, qlayout_));
      if (T > kGemvMaxRows) {
        expert_ws = std::max(expert_ws, cuda::expert_ffn_grouped_q_workspace_bytes(std::min(T, kCublasRows - 1), k, E, qlayout_));
      }
    }
  }
  size_t attn_ws = 0;
  for (int b = 1; b <= std::min(T, kAttnChunk); ++b) {
    attn_ws = std::max(attn_ws, cuda::mla_decode_cublas_workspace_bytes(b, heads, ctx_bound_));
  }
  const size_t inputs = 2 * (static_cast<size_t>(T) * 8 + 256) + 5 * (static_cast<size_t>(T + 1) * 4 + 256);
  // Offloading: ids, weights, the pointer table and up to 2 + E launch masks (kernel paths only), and
  // with quantized experts the blob table.
  const size_t mask_entries = static_cast<size_t>(std::min(T, kCublasRows - 1)) * k;
  const size_t offload_inputs =
      pool_ ? 2 * (TK * 4 + 256) + (3 * static_cast<size_t>(E) * sizeof(void*) + 256) + (2 + static_cast<size_t>(E)) * (mask_entries * 4 + 256) +
                  (quant_experts_ ? static_cast<size_t>(E) * sizeof(void*) + 256 : 0)
            : 0;

  Workspace n;
  n.rows = T;
  n.logit_rows = R;
  n.ctx = ctx_bound_;
  for (int pass = 0; pass < 2; ++pass) {
    Carver cv(pass == 0 ? nullptr : n.memory.get());
    n.h = cv.take<float>(static_cast<size_t>(T) * H);
    n.x = cv.take<bf16>(static_cast<size_t>(T) * H);
    n.qkv = cv.take<bf16>(static_cast<size_t>(T) * w_->qkv_width);
    n.kvrows = cv.take<bf16>(static_cast<size_t>(T) * c_.kv_cache_width());
    n.kv = cv.take<bf16>(static_cast<size_t>(T) * heads * (c_.qk_nope_head_dim + c_.v_head_dim));
    n.attn = cv.take<bf16>(static_cast<size_t>(T) * heads * c_.v_head_dim);
    n.router = cv.take<float>(static_cast<size_t>(T) * E);
    n.ids = cv.take<int32_t>(TK);
    n.rw = cv.take<float>(TK);
    n.gu = cv.take<bf16>(gu_elems);
    n.hbuf = cv.take<bf16>(h_elems);
    if (T >= kCublasRows && c_.n_routed_experts > 0) {
      n.xs = cv.take<bf16>(TK * H);
      n.ys = cv.take<float>(TK * H);
      n.offsets = cv.take<int32_t>(static_cast<size_t>(E) + 1);
      n.sorted = cv.take<int32_t>(TK);
      n.inv = cv.take<int32_t>(TK);
      n.group_ws_bytes = cuda::expert_group_workspace_bytes(static_cast<int>(TK));
      n.group_ws = cv.take<char>(n.group_ws_bytes);
    }
    n.expert_ws_bytes = expert_ws;
    n.expert_ws = cv.take<char>(expert_ws);
    n.attn_ws_bytes = attn_ws;
    n.attn_ws = cv.take<char>(attn_ws);
    n.hl = cv.take<float>(static_cast<size_t>(R) * H);
    n.xl = cv.take<bf16>(static_cast<size_t>(R) * H);
    n.logits = cv.take<float>(static_cast<size_t>(R) * c_.vocab_size);
    n.greedy = cv.take<int32_t>(2 * static_cast<size_t>(R));
    n.iota = cv.take<int64_t>(T);
    n.inputs_bytes = inputs;
    n.inputs = cv.take<char>(inputs);
    if (pool_) {
      n.offload_inputs_bytes = offload_inputs;
      n.offload_inputs = cv.take<char>(offload_inputs);
      n.expert_out = cv.take<float>(mask_entries * H);
    }
    if (pass == 0) {
      ws_ = Workspace();  // free the old buffers before taking the new ones
      n.memory = DeviceMemory(cv.used());
    }
  }
  std::vector<int64_t> iota(static_cast<size_t>(T));
  for (int i = 0; i < T; ++i) iota[static_cast<size_t>(i)] = i;
  CUDA_CHECK(cudaMemcpy(n.iota, iota.data(), iota.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  ws_ = std::move(n);
  inputs_host_ = PinnedMemory(inputs);
  logits_host_ = PinnedMemory(static_cast<size_t>(R) * c_.vocab_size * sizeof(float));
  if (pool_) offload_host_ = PinnedMemory(offload_inputs);
  check_budget("for the workspace");
  sample_device_used();
}

void CudaBackend::check_batch(const StepBatch& b, std::vector<int>& new_length) const {
  const size_t T = b.tokens.size();
  if (T == 0) throw Error("forward: empty batch");
  if (b.seq.size() != T || b.pos.size() != T) throw Error("forward: tokens, seq and pos differ in length");
  new_length = length_;
  for (size_t i = 0; i < T; ++i) {
    const int s = b.seq[i];
    if (s < 0 || static_cast<size_t>(s) >= length_.size()) throw Error("forward: sequence slot " + std::to_string(s) + " does not exist");
    if (b.pos[i] != new_length[s]) {
      throw Error("forward: row " + std::to_string(i) + " has position " + std::to_string(b.pos[i]) + " but sequence " +
                  std::to_string(s) + " continues at " + std::to_string(new_length[s]));
    }
    if (++new_length[s] > capacity_[s]) throw Error("forward: sequence " + std::to_string(s) + " exceeds its capacity");
    if (b.tokens[i] < 0 || b.tokens[i] >= c_.vocab_size) throw Error("forward: token id " + std::to_string(b.tokens[i]) + " outside the vocabulary");
  }
  for (int r : b.logit_rows) {
    if (r < 0 || static_cast<size_t>(r) >= T) throw Error("forward: logit row " + std::to_string(r) + " outside the batch");
  }
}

StepPlan CudaBackend::make_plan(const StepBatch& b) const {
  StepPlan p;
  p.T = static_cast<int>(b.tokens.size());
  p.R = static_cast<int>(b.logit_rows.size());
  p.logits_identity = p.R == p.T;
  for (int r = 0; p.logits_identity && r < p.R; ++r) p.logits_identity = b.logit_rows[static_cast<size_t>(r)] == r;
  // Runs of consecutive rows of one sequence.
  std::vector<char> seen(length_.size(), 0);
  bool fresh = true, decode = true;
  int run_len = 0;
  for (int i = 0; i < p.T; ++i) {
    const int s = b.seq[static_cast<size_t>(i)];
    const bool new_run = i == 0 || b.seq[static_cast<size_t>(i) - 1] != s;
    if (new_run) {
      if (seen[s]) fresh = decode = false;  // the sequence's rows are split
      seen[s] = 1;
      ++p.S;
      run_len = 0;
    } else {
      decode = false;
    }
    ++run_len;
    p.max_len = std::max(p.max_len, run_len);
    if (b.pos[static_cast<size_t>(i)] != run_len - 1) fresh = false;  // does not start at 0 / not contiguous
    p.max_ctx = std::max(p.max_ctx, b.pos[static_cast<size_t>(i)] + 1);
  }
  p.fresh_prompts = fresh;
  p.decode_rows = decode;
  return p;
}

StepInputs CudaBackend::upload_inputs(const StepBatch& b, const StepPlan& p) {
  StepInputs d, h;
  const size_t T = static_cast<size_t>(p.T);
  for (int pass = 0; pass < 2; ++pass) {
    Carver cv(pass == 0 ? ws_.inputs : inputs_host_.get());
    StepInputs& x = pass == 0 ? d : h;
    x.cache_row = cv.take<int64_t>(T);
    x.cache_start = cv.take<int64_t>(T);
    x.tokens = cv.take<int32_t>(T);
    x.pos = cv.take<int32_t>(T);
    x.seq_len = cv.take<int32_t>(T);
    x.logit_idx = cv.take<int32_t>(static_cast<size_t>(p.R));
    x.seq_start = cv.take<int32_t>(static_cast<size_t>(p.S) + 1);
    if (cv.used() > ws_.inputs_bytes) throw Error("CUDA backend: step inputs exceed their buffer (internal error)");
  }
  int run = 0;
  for (size_t i = 0; i < T; ++i) {
    const int s = b.seq[i];
    h.cache_start[i] = base_[s];
    h.cache_row[i] = base_[s] + b.pos[i];
    h.tokens[i] = b.tokens[i];
    h.pos[i] = b.pos[i];
    h.seq_len[i] = b.pos[i] + 1;
    if (i == 0 || b.seq[i - 1] != s) h.seq_start[run++] = static_cast<int32_t>(i);
  }
  h.seq_start[run] = static_cast<int32_t>(T);
  for (int r = 0; r < p.R; ++r) h.logit_idx[r] = b.logit_rows[static_cast<size_t>(r)];
  const size_t bytes = reinterpret_cast<char*>(h.seq_start + p.S + 1) - static_cast<char*>(inputs_host_.get());
  CUDA_CHECK(cudaMemcpyAsync(ws_.inputs, inputs_host_.get(), bytes, cudaMemcpyHostToDevice, stream_));
  return d;
}

void CudaBackend::forward(const StepBatch& b, float* logits) { forward_impl(b, logits, nullptr); }

// Greedy steps keep the logits on the GPU: 8 bytes per row come back instead of vocab * 4 (6.5 MB at batch
// 16), and the host neither copies nor scans them: at batch 16 the step's time outside the forward went
// from 5.0 to 0.4 ms on the H200 host (bench --sample-on host against device, reports/bench/device-sampling-h200/).
bool CudaBackend::forward_argmax(const StepBatch& b, int32_t* tokens, float* logits) { return forward_impl(b, logits, tokens); }

bool CudaBackend::forward_impl(const StepBatch& b, float* logits, int32_t* tokens) {
  CUDA_CHECK(cudaSetDevice(opt_.device));
  std::vector<int> new_length;
  check_batch(b, new_length);
  StepPlan p = make_plan(b);
  ensure_workspace(p.T, p.R);
  const StepInputs in = upload_inputs(b, p);
  // Offloaded experts: every MoE layer goes through the host (placement, copies), so no graphs, except in a
  // resident step (every routed expert in a slot: cuda_resident_step.cpp).
  resident_now_ = resident_step_possible(p);
  const bool graph = opt_.use_graphs && !hook_ && ((!interceptor_ && !pool_) || resident_now_) && p.decode_rows && p.logits_identity &&
                     p.T <= kGraphMaxRows;
  if (pool_) pool_->begin_forward();
  decode_forward_ = p.decode_rows;
  layer_end_ms_ = 0;
  issue_prefetch_orders();  // issue 12 prefetch: the layers the controller decided at the step's start
  const auto forward_start = std::chrono::steady_clock::now();
  if (resident_now_) begin_resident_step(p);
  if (graph) {
    // A graph serves every step of its key: attention on the cache (also right at position 0) up to
    // the generation's bound.
    p.fresh_prompts = false;
    p.max_ctx = ctx_bound_;
    run_graph(p, in);
  } else {
    run_model(p, in, false);
  }
  if (resident_now_) fetch_resident_plans();
  bool sampled = false;
  if (tokens && p.R > 0 && !hook_) {
    cuda::argmax_rows(ws_.logits, p.R, c_.vocab_size, ws_.greedy, ws_.greedy + p.R, stream_);
    const size_t bytes = 2 * static_cast<size_t>(p.R) * sizeof(int32_t);
    CUDA_CHECK(cudaMemcpyAsync(logits_host_.get(), ws_.greedy, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    const int32_t* got = static_cast<const int32_t*>(logits_host_.get());
    sampled = std::all_of(got + p.R, got + 2 * p.R, [](int32_t bad) { return bad == 0; });
    if (sampled) std::copy_n(got, p.R, tokens);
  }
  if (p.R > 0 && !sampled) {  // the logits themselves: asked for, or a non-finite one for the engine to name
    const size_t bytes = static_cast<size_t>(p.R) * c_.vocab_size * sizeof(float);
    CUDA_CHECK(cudaMemcpyAsync(logits_host_.get(), ws_.logits, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(logits, logits_host_.get(), bytes);
    if (hook_) hook_("logits", -1, logits, p.R, c_.vocab_size);
  } else if (p.R == 0) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  collect_expert_launches();
  if (resident_now_) {
    end_resident_step(p.T);
    ++pool_->counters.resident_forwards;
  }
  if (pool_ && p.decode_rows) {
    ++pool_->counters.decode_forwards;
    pool_->counters.decode_forward_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - forward_start).count();
  }
  if (pool_) pool_->end_forward();
  sample_device_used();
  length_ = new_length;
  return sampled;
}

void CudaBackend::mark_expert_launch() {
  if (launch_events_used_ == launch_events_.size()) {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreate(&e));
    launch_events_.push_back(e);
  }
  CUDA_CHECK(cudaEventRecord(launch_events_[launch_events_used_++], stream_));
}

void CudaBackend::collect_expert_launches() {
  if (pool_ != nullptr) {
    for (size_t i = 0; i + 1 < launch_events_used_; i += 2) {
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, launch_events_[i], launch_events_[i + 1]));
      pool_->counters.decode_expert_gpu_ms += ms;
      ++pool_->counters.decode_expert_launches;
    }
  }
  launch_events_used_ = 0;
}

void CudaBackend::run_graph(const StepPlan& p, const StepInputs& in) {
  const auto key = std::make_pair(p.T, p.max_ctx);
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    if (!seen_.count(key)) {  // first time: eagerly (the inputs region layout is the same for the key)
      seen_.insert(key);
      run_model(p, in, false);
      return;
    }
    cudaGraph_t graph = nullptr;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      run_model(p, in, true);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    CUDA_CHECK(e);
    it = graphs_.emplace(key, exec).first;
  }
  CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
}

// device_info().offload.quantizedFile: null without a file, else what this load did with it.
std::string CudaBackend::quantized_file_info() const {
  if (!host_experts_ || !host_experts_->has_file) return "null";
  return quant::quantized_file_json(host_experts_->file_result);
}

std::string CudaBackend::device_info() const {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, opt_.device);
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  const DeviceMemoryStats st = device_memory_stats();
  std::ostringstream o;
  o << "{\"name\":\"" << json_escape(prop.name) << "\",\"computeCapability\":\"" << prop.major << "." << prop.minor
    << "\",\"multiprocessors\":" << prop.multiProcessorCount << ",\"totalMemoryBytes\":" << total_b
    << ",\"deviceUsedBytes\":" << (total_b - free_b) << ",\"engineBytes\":" << st.current
    << ",\"enginePeakBytes\":" << st.peak << ",\"weightBytes\":" << w_->bytes()
    << ",\"cacheBytes\":" << cache_.bytes() << ",\"workspaceBytes\":" << ws_.memory.bytes()
    << ",\"uploadSeconds\":" << w_->upload_seconds << ",\"graphs\":" << graphs_.size()
    << ",\"graphsEnabled\":" << (opt_.use_graphs ? "true" : "false") << ",\"deviceUsedPeakBytes\":" << device_used_peak_
    << ",\"gpuBudgetBytes\":" << opt_.gpu_budget_bytes;
  if (pool_) {
    const OffloadCounters& k = pool_->counters;
    o << ",\"offload\":{\"slotsPerLayer\":" << pool_->slots() << ",\"stagingBuffers\":" << pool_->staging()
      << ",\"expertDtype\":\"" << quant::expert_dtype_name(expert_layout_.dtype) << "\""
      << ",\"expertBytes\":" << host_experts_->expert_bytes() << ",\"hostExpertBytes\":" << host_experts_->bytes()
      << ",\"poolBytes\":" << pool_->device_bytes() << ",\"hostCopySeconds\":" << host_experts_->copy_seconds
      << ",\"quantizeSeconds\":" << host_experts_->quantize_seconds << ",\"hostPinSeconds\":" << host_experts_->pin_seconds << ",\"quantizedFile\":" << quantized_file_info() << ",\"forwards\":" << k.forwards
      << ",\"slotCopies\":" << k.slot_copies << ",\"stagedCopies\":" << k.staged_copies << ",\"bytesH2D\":" << k.bytes
      << ",\"copyWaits\":" << k.waits << ",\"copyWaitMs\":" << k.copy_wait_ms << ",\"cpuExperts\":" << k.cpu_experts
      << ",\"cpuRows\":" << k.cpu_rows << ",\"fillCopies\":" << k.fill_copies << ",\"cpuMs\":" << k.cpu_ms
      << ",\"cpuWaitMs\":" << k.cpu_wait_ms << ",\"cpuStartLatencyMs\":" << k.cpu_start_latency_ms
      << ",\"cpuJoinLatencyMs\":" << k.cpu_join_latency_ms << ",\"decodeForwards\":" << k.decode_forwards
      << ",\"decodeForwardMs\":" << k.decode_forward_ms << ",\"decodeHostLayerMs\":" << k.decode_host_layer_ms
      << ",\"decodeLayerTails\":" << k.decode_layer_tails << ",\"decodeLayerHeadMs\":" << k.decode_layer_head_ms
      << ",\"decodeLayerTailMs\":" << k.decode_layer_tail_ms << ",\"residentForwards\":" << k.resident_forwards
      << ",\"decodeExpertLaunches\":" << k.decode_expert_launches << ",\"decodeExpertGpuMs\":" << k.decode_expert_gpu_ms
      << ",\"prefetch\":" << prefetch_info() << "}";
  }
  o << "}";
  return o.str();
}

}  // namespace moe::cuda_backend

namespace moe {
std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& config, const ModelWeights& weights,
                                           const CudaBackendOptions& options) {
  return std::make_unique<cuda_backend::CudaBackend>(config, weights, options);
}
}  // namespace moe
