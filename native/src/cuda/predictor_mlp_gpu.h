#pragma once
// The trained expert predictor (moe/offload/predictor_mlp.h) run on the GPU, so that issue 12's "on the
// GPU or the CPU, whichever is cheaper" can be measured (bench/predictor_gpu_bench.cu). Unlike the other
// files of this folder it owns memory and synchronises: its inputs are the replayed routing on the host and
// its ids feed the host's prefetch decisions, so one call is a full round trip (pack the rows' nonzero
// inputs into pinned memory, one copy up, one kernel, one copy down, wait for the stream; or, Mapped, the
// kernel alone, reading and writing that pinned memory across the bus).
//
// Same arithmetic as PredictorMlp::predict, in the same order (bias, then one fused multiply-add per nonzero
// input, ascending; ReLU between layers; top `budget` with the earlier expert first on equal logits; the
// min_logit gate), so for finite logits the ids and logits equal the CPU's bit for bit.
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "moe/offload/predictor_mlp.h"

namespace moe::cuda {

// One row to predict: PredictorMlp::predict's arguments (a routed sequence, experts / weights laid out
// [length * L * top_k] as ReplaySequence, its token t, MoE layer i).
struct PredictorRow {
  const int32_t* experts = nullptr;
  const float* weights = nullptr;
  int length = 0;
  int t = 0;
  int i = 0;
};

// How a call's inputs reach the kernel and its ids come back. Copies: the pinned staging goes up in one
// copy and the results come down in one. Mapped: the staging is pinned host memory mapped into the device,
// which the kernel reads and writes across the bus itself: no copies, one launch and the wait.
enum class PredictorTransfer { Copies, Mapped };

class PredictorMlpGpu {
 public:
  // Uploads mlp's model to the current device once. Taking the PredictorMlp, not a PredictorModel, reuses
  // the shape checks of its constructor. max_rows bounds the rows of one call (it sizes the staging).
  PredictorMlpGpu(const offload::PredictorMlp& mlp, int max_rows, PredictorTransfer transfer = PredictorTransfer::Copies);
  ~PredictorMlpGpu();
  PredictorMlpGpu(const PredictorMlpGpu&) = delete;
  PredictorMlpGpu& operator=(const PredictorMlpGpu&) = delete;

  int max_rows() const { return max_rows_; }
  int budget() const { return m_.budget; }

  // Predicts n <= max_rows rows on `stream` and waits for them: row r's ids (best first) into
  // out_ids[r * budget ...], how many in out_counts[r] (fewer than budget where min_logit leaves some out);
  // with out_logits, row r's logits into out_logits[r * E ...]. Returns the ids of all rows together.
  // Throws moe::Error for a row predict would refuse, moe::cuda::CudaError for a CUDA failure. One call
  // at a time per object (the staging buffers are shared).
  int predict_rows(cudaStream_t stream, const PredictorRow* rows, int n, int32_t* out_ids, int32_t* out_counts,
                   float* out_logits = nullptr);

 private:
  struct Nonzero {
    int32_t index;
    float value;
  };
  struct Free {  // deleters of the owned allocations (no exceptions from a destructor: errors ignored)
    void operator()(void* p) const;
  };
  struct FreeHost {
    void operator()(void* p) const;
  };
  int row_inputs(const PredictorRow& row, Nonzero* out);

  offload::PredictorModel m_;  // geometry and blocks (the weights live on the device)
  int max_rows_ = 0, n_layers_ = 0, max_nonzeros_ = 0, max_width_ = 0, act_ = 0, tile_ = 0, threads_ = 0;
  size_t smem_bytes_ = 0, pairs_at_ = 0;
  std::unique_ptr<void, Free> params_, layers_, in_dev_, out_dev_;
  std::unique_ptr<void, FreeHost> in_host_, out_host_;
  bool mapped_ = false;
  char* in_kernel_ = nullptr;  // what the kernel reads and writes: in_dev_ / out_dev_, or the mapped staging
  char* out_kernel_ = nullptr;
  offload::PredictorScratch inputs_;  // gather_predictor_inputs' dense features (all zero between calls) and indices
};

}  // namespace moe::cuda
