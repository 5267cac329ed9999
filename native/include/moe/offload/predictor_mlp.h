#pragma once
// The trained expert predictor (issue 12: `--prefetch predicted`) run inside the runtime: at MoE layer i,
// once layer i's routing is on the host, it names the experts of layer i + lookahead for each row of the
// forward. It is the C++ port of predictor/src/infer.ts (PredictorRuntime.predict) and of the feature
// vector of predictor/src/features.ts (writeFeatures): the nonzero inputs are visited in ascending order and
// each sum is rounded to float as JavaScript's Float32Array stores it (predictor_mlp.cpp accumulate_row says
// when a fused multiply-add could differ), so its ids equal the TypeScript reference's, which the simulator
// uses (runtime/test/offload/prefetch-twin.test.ts and prefetch-predicted-esft.test.ts compare the decisions).
//
// Why the CPU, not the GPU: the decisions that consume the ids (the expert cache's prefetch) are made on the
// host right after the routing arrives, and the MLP is small (one hidden layer of a few hundred units, a few
// dozen nonzero inputs). Measured on the H200 (reports/bench/predictor-gpu-h200-2026-12-04/, the GPU version
// src/cuda/predictor_mlp_gpu.cu): one row takes 6.5 us here against a 40-54 us round trip on the GPU, and 16
// rows 88 us here (49 us on a thread pool) against 54-68 us. Decode rows stay serial (the pool's wake-up is
// ~40 us). The time it takes in a run is measured by the controller (PrefetchStats) and reported.
//
// Inputs come from the replayed routing (the predictor's features are routing, and under replay the routing
// of this token at layers <= i and of earlier tokens is what the run has produced by then).
#include <cstdint>
#include <vector>

namespace moe {
namespace offload {

// One block of the feature vector (predictor/src/features.ts FeatureBlock; router scores are not supported:
// the replay carries none).
struct PredictorBlock {
  enum class Kind { Routing, Layer };
  Kind kind = Kind::Routing;
  int layer_offset = 0;   // Routing: MoE layer i + layer_offset
  int token_offset = 0;   // Routing: token t + token_offset
  bool per_layer = false; // Routing: the multi-hot goes into source layer i's slot of L * E
};

// One dense layer, W transposed: weight_t[i * out + o] (a nonzero input adds one contiguous row).
struct PredictorLayer {
  int in = 0, out = 0;
  std::vector<float> weight_t;
  std::vector<float> bias;
};

struct PredictorModel {
  int moe_layers = 0;   // L
  int num_experts = 0;  // E
  int top_k = 0;        // experts per token in the routing the features read
  int lookahead = 1;    // k: predicts MoE layer i + k at layer i
  std::vector<PredictorBlock> blocks;
  std::vector<PredictorLayer> layers;  // ReLU between layers, none after the last
  int budget = 0;                      // ids named per (token, layer), best first
  double min_logit = -1e300;           // ids whose logit is below it are left out (--predictor-min-prob)
};

// What one prediction writes; one per thread that predicts at the same time (make_scratch).
struct PredictorScratch {
  std::vector<float> features;  // dense feature vector, kept all zero between calls
  std::vector<int> touched;     // its nonzero indices of this call
  std::vector<std::vector<float>> act;
  std::vector<int> rank;
};

// The nonzero inputs of one prediction (features.ts writeFeatures) for token t of a routed sequence at MoE
// layer i: each added into s.features (as float(double + double), as JavaScript's Float32Array stores a sum),
// its index listed once in s.touched, sorted ascending. Throws for a token or layer with no prediction and for a
// routed expert outside the model. The caller reads them, then clear_predictor_inputs (s.features is all zero
// between calls). PredictorMlp::predict is this, the MLP and the top-budget selection; the GPU port
// (src/cuda/predictor_mlp_gpu.cu) takes its inputs from here too.
void gather_predictor_inputs(const PredictorModel& m, PredictorScratch& s, const int32_t* experts, const float* weights, int length, int t, int i);
void clear_predictor_inputs(PredictorScratch& s);

class PredictorMlp {
 public:
  // Checks the model's shapes (a clear moe::Error naming what does not fit).
  explicit PredictorMlp(PredictorModel model);

  const PredictorModel& model() const { return m_; }
  int feature_width() const { return width_; }
  PredictorScratch make_scratch() const;

  // The ids predicted for MoE layer i + lookahead of token t of a routed sequence (experts / weights laid
  // out [length * L * top_k], as ReplaySequence), known after layer i: up to `budget` ids into out, best
  // first; returns how many (fewer when min_logit leaves some out). Threads may call it at once, each with
  // its own scratch.
  int predict(PredictorScratch& s, const int32_t* experts, const float* weights, int length, int t, int i, int32_t* out) const;

 private:
  PredictorModel m_;
  int width_ = 0;
};

}  // namespace offload
}  // namespace moe
