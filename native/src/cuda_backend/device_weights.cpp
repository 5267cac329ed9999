#include "device_weights.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "cuda_check.h"
#include "moe/error.h"

namespace moe::cuda_backend {
namespace {

// One host -> device copy: raw bytes, or a conversion of f16 / f32 elements to bf16 (or of fp32 norm
// vectors, copied as they are).
struct CopyJob {
  enum Kind { Raw, F16ToBf16, F32ToBf16 } kind = Raw;
  const void* src = nullptr;
  void* dst = nullptr;
  size_t count = 0;  // bytes for Raw, elements otherwise
};

void check_geometry(const ModelConfig& c) {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("CUDA backend: unsupported geometry: " + what + " (the CPU backend runs it: device 'cpu')");
  };
  need(c.q_lora_rank == 0, "q_lora_rank " + std::to_string(c.q_lora_rank) + " (only plain q_proj, as in DeepSeek-V2-Lite)");
  need(c.qk_nope_head_dim == 128 && c.qk_rope_head_dim == 64 && c.v_head_dim == 128 && c.kv_lora_rank == 512,
       "MLA dims nope/rope/v/kv_lora " + std::to_string(c.qk_nope_head_dim) + "/" + std::to_string(c.qk_rope_head_dim) +
           "/" + std::to_string(c.v_head_dim) + "/" + std::to_string(c.kv_lora_rank) + " (kernels need 128/64/128/512)");
  need(c.num_attention_heads % 16 == 0, "num_attention_heads " + std::to_string(c.num_attention_heads) + " (multiple of 16)");
  need(c.hidden_size % 64 == 0, "hidden_size " + std::to_string(c.hidden_size) + " (multiple of 64)");
  need(c.intermediate_size % 8 == 0, "intermediate_size " + std::to_string(c.intermediate_size) + " (multiple of 8)");
  if (c.n_routed_experts > 0) {
    need(c.n_routed_experts <= 256 && c.num_experts_per_tok <= 16, "n_routed_experts <= 256 and num_experts_per_tok <= 16");
    need(c.moe_intermediate_size % 64 == 0, "moe_intermediate_size " + std::to_string(c.moe_intermediate_size) + " (multiple of 64)");
  }
}

void check_matrix(const Matrix& m, int rows, int cols, const std::string& what) {
  if (m.empty() || m.rows != rows || m.cols != cols) {
    throw Error("CUDA backend: " + what + " is [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + "], expected [" +
                std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
}

void add_matrix(std::vector<CopyJob>& jobs, const Matrix& m, bf16* dst) {
  if (dst == nullptr) return;  // sizing pass
  const size_t n = static_cast<size_t>(m.rows) * m.cols;
  CopyJob j;
  j.src = m.data;
  j.dst = dst;
  switch (m.dtype) {
    case DType::BF16: j.kind = CopyJob::Raw; j.count = n * 2; break;
    case DType::F16: j.kind = CopyJob::F16ToBf16; j.count = n; break;
    default: j.kind = CopyJob::F32ToBf16; j.count = n; break;
  }
  jobs.push_back(j);
}

void add_vector(std::vector<CopyJob>& jobs, const std::vector<float>& v, float* dst) {
  if (dst == nullptr) return;
  jobs.push_back({CopyJob::Raw, v.data(), dst, v.size() * sizeof(float)});
}

// Runs the copies on `threads` host threads, each with a stream and two pinned staging buffers.
void run_copies(const std::vector<CopyJob>& jobs, int device, int threads) {
  constexpr size_t kChunk = size_t(32) << 20;  // bytes of bf16 output per piece
  struct Piece {
    const CopyJob* job;
    size_t begin, end;  // in job units (bytes or elements)
  };
  std::vector<Piece> pieces;
  for (const CopyJob& j : jobs) {
    const size_t unit = j.kind == CopyJob::Raw ? kChunk : kChunk / 2;
    for (size_t b = 0; b < j.count; b += unit) pieces.push_back({&j, b, std::min(j.count, b + unit)});
  }
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::string error;
  auto worker = [&]() {
    try {
      CUDA_CHECK(cudaSetDevice(device));
      cudaStream_t stream;
      CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      PinnedMemory buf[2] = {PinnedMemory(kChunk), PinnedMemory(kChunk)};
      cudaEvent_t done[2];
      CUDA_CHECK(cudaEventCreateWithFlags(&done[0], cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&done[1], cudaEventDisableTiming));
      CUDA_CHECK(cudaEventRecord(done[0], stream));
      CUDA_CHECK(cudaEventRecord(done[1], stream));
      for (size_t i = 0;; ++i) {
        const size_t p = next.fetch_add(1);
        if (p >= pieces.size()) break;
        const Piece& pc = pieces[p];
        const CopyJob& j = *pc.job;
        PinnedMemory& b = buf[i & 1];
        CUDA_CHECK(cudaEventSynchronize(done[i & 1]));  // the staging buffer's previous copy is done
        size_t bytes;
        char* dst = static_cast<char*>(j.dst);
        if (j.kind == CopyJob::Raw) {
          bytes = pc.end - pc.begin;
          std::memcpy(b.get(), static_cast<const char*>(j.src) + pc.begin, bytes);
          dst += pc.begin;
        } else {
          uint16_t* out = b.as<uint16_t>();
          for (size_t e = pc.begin; e < pc.end; ++e) {
            const float f = j.kind == CopyJob::F16ToBf16 ? f16_to_f32(static_cast<const uint16_t*>(j.src)[e])
                                                         : static_cast<const float*>(j.src)[e];
            out[e - pc.begin] = f32_to_bf16(f);
          }
          bytes = (pc.end - pc.begin) * 2;
          dst += pc.begin * 2;
        }
        CUDA_CHECK(cudaMemcpyAsync(dst, b.get(), bytes, cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaEventRecord(done[i & 1], stream));
      }
      CUDA_CHECK(cudaStreamSynchronize(stream));
      cudaEventDestroy(done[0]);
      cudaEventDestroy(done[1]);
      cudaStreamDestroy(stream);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (error.empty()) error = e.what();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (std::thread& t : pool) t.join();
  if (!error.empty()) throw Error("CUDA backend: uploading the weights failed: " + error);
}

}  // namespace

DeviceWeights::DeviceWeights(const ModelConfig& c, const ModelWeights& w, bool routed_on_host) {
  const auto t0 = std::chrono::steady_clock::now();
  check_geometry(c);
  const int H = c.hidden_size, heads = c.num_attention_heads;
  q_out = heads * c.qk_head_dim();
  const int kv_a = c.kv_lora_rank + c.qk_rope_head_dim;
  qkv_width = q_out + kv_a;
  shared_ff = c.n_shared_experts * c.moe_intermediate_size;
  const int dff = c.moe_intermediate_size, E = c.n_routed_experts;
  expert_stride = static_cast<size_t>(3) * dff * H;
  if (w.layers.size() != static_cast<size_t>(c.num_hidden_layers)) throw Error("CUDA backend: layer count differs from the config");

  // Pass 0 sizes the allocation (null base), pass 1 carves it and lists the copies.
  std::vector<CopyJob> jobs;
  for (int pass = 0; pass < 2; ++pass) {
    Carver cv(pass == 0 ? nullptr : memory_.get());
    jobs.clear();
    layers.assign(w.layers.size(), DeviceLayer{});
    bf16* emb = cv.take<bf16>(static_cast<size_t>(c.vocab_size) * H);
    check_matrix(w.embed, c.vocab_size, H, "model.embed_tokens.weight");
    add_matrix(jobs, w.embed, emb);
    embed = emb;
    bf16* head = cv.take<bf16>(static_cast<size_t>(c.vocab_size) * H);
    check_matrix(w.lm_head, c.vocab_size, H, "lm_head.weight");
    add_matrix(jobs, w.lm_head, head);
    lm_head = head;
    float* fn = cv.take<float>(H);
    add_vector(jobs, w.final_norm, fn);
    final_norm = fn;
    for (size_t l = 0; l < w.layers.size(); ++l) {
      const LayerWeights& L = w.layers[l];
      DeviceLayer& D = layers[l];
      const std::string at = "layer " + std::to_string(l) + " ";
      D.input_norm = cv.take<float>(H);
      add_vector(jobs, L.input_norm, D.input_norm);
      D.post_norm = cv.take<float>(H);
      add_vector(jobs, L.post_norm, D.post_norm);
      D.kv_a_norm = cv.take<float>(c.kv_lora_rank);
      add_vector(jobs, L.attn.kv_a_norm, D.kv_a_norm);
      check_matrix(L.attn.q_proj, q_out, H, at + "q_proj");
      check_matrix(L.attn.kv_a_proj, kv_a, H, at + "kv_a_proj_with_mqa");
      D.qkv_a = cv.take<bf16>(static_cast<size_t>(qkv_width) * H);
      add_matrix(jobs, L.attn.q_proj, D.qkv_a);
      add_matrix(jobs, L.attn.kv_a_proj, D.qkv_a ? D.qkv_a + static_cast<size_t>(q_out) * H : nullptr);
      check_matrix(L.attn.kv_b_proj, heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, at + "kv_b_proj");
      D.kv_b = cv.take<bf16>(static_cast<size_t>(L.attn.kv_b_proj.rows) * L.attn.kv_b_proj.cols);
      add_matrix(jobs, L.attn.kv_b_proj, D.kv_b);
      check_matrix(L.attn.o_proj, H, heads * c.v_head_dim, at + "o_proj");
      D.o_proj = cv.take<bf16>(static_cast<size_t>(H) * heads * c.v_head_dim);
      add_matrix(jobs, L.attn.o_proj, D.o_proj);
      D.moe = L.moe;
      if (!L.moe) {
        const int I = c.intermediate_size;
        check_matrix(L.dense.gate, I, H, at + "mlp.gate_proj");
        check_matrix(L.dense.up, I, H, at + "mlp.up_proj");
        check_matrix(L.dense.down, H, I, at + "mlp.down_proj");
        D.dense_gu = cv.take<bf16>(static_cast<size_t>(2) * I * H);
        add_matrix(jobs, L.dense.gate, D.dense_gu);
        add_matrix(jobs, L.dense.up, D.dense_gu ? D.dense_gu + static_cast<size_t>(I) * H : nullptr);
        D.dense_down = cv.take<bf16>(static_cast<size_t>(H) * I);
        add_matrix(jobs, L.dense.down, D.dense_down);
        continue;
      }
      check_matrix(L.router, E, H, at + "mlp.gate (router)");
      D.router = cv.take<bf16>(static_cast<size_t>(E) * H);
      add_matrix(jobs, L.router, D.router);
      if (L.has_shared) {
        check_matrix(L.shared.gate, shared_ff, H, at + "shared_experts.gate_proj");
        check_matrix(L.shared.up, shared_ff, H, at + "shared_experts.up_proj");
        check_matrix(L.shared.down, H, shared_ff, at + "shared_experts.down_proj");
        D.shared_gu = cv.take<bf16>(static_cast<size_t>(2) * shared_ff * H);
        add_matrix(jobs, L.shared.gate, D.shared_gu);
        add_matrix(jobs, L.shared.up, D.shared_gu ? D.shared_gu + static_cast<size_t>(shared_ff) * H : nullptr);
        D.shared_down = cv.take<bf16>(static_cast<size_t>(H) * shared_ff);
        add_matrix(jobs, L.shared.down, D.shared_down);
      }
      if (routed_on_host) continue;  // offloaded: HostExperts checks and holds them
      if (L.experts.size() != static_cast<size_t>(E)) throw Error("CUDA backend: " + at + "expert count differs from the config");
      D.experts = cv.take<bf16>(expert_stride * E);
      for (int e = 0; e < E; ++e) {
        const MlpWeights& X = L.experts[static_cast<size_t>(e)];
        const std::string ex = at + "expert " + std::to_string(e) + " ";
        check_matrix(X.gate, dff, H, ex + "gate_proj");
        check_matrix(X.up, dff, H, ex + "up_proj");
        check_matrix(X.down, H, dff, ex + "down_proj");
        bf16* base = D.experts ? D.experts + expert_stride * e : nullptr;
        add_matrix(jobs, X.gate, base);
        add_matrix(jobs, X.up, base ? base + static_cast<size_t>(dff) * H : nullptr);
        add_matrix(jobs, X.down, base ? base + static_cast<size_t>(2) * dff * H : nullptr);
      }
      const bf16** ptrs = cv.take<const bf16*>(static_cast<size_t>(3) * E);
      D.p_gate = ptrs;
      D.p_up = ptrs ? ptrs + E : nullptr;
      D.p_down = ptrs ? ptrs + 2 * E : nullptr;
    }
    if (pass == 0) memory_ = DeviceMemory(cv.used());
  }

  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  const int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency() / 2u, 1u, 8u));
  run_copies(jobs, device, threads);

  // Per-expert pointer tables (device pointers, written from the host once).
  for (DeviceLayer& D : layers) {
    if (!D.moe || D.experts == nullptr) continue;
    std::vector<const bf16*> ptrs(static_cast<size_t>(3) * E);
    for (int e = 0; e < E; ++e) {
      const bf16* base = D.experts + expert_stride * e;
      ptrs[e] = base;
      ptrs[E + e] = base + static_cast<size_t>(dff) * H;
      ptrs[2 * E + e] = base + static_cast<size_t>(2) * dff * H;
    }
    CUDA_CHECK(cudaMemcpy(D.p_gate, ptrs.data(), ptrs.size() * sizeof(ptrs[0]), cudaMemcpyHostToDevice));
  }
  upload_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace moe::cuda_backend
