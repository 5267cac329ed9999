// The in-line expert predictor (moe/offload/predictor_mlp.h): predictor/src/infer.ts in C++.
#include "moe/offload/predictor_mlp.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "moe/error.h"

namespace moe {
namespace offload {

namespace {

// y[c] += v * w[c] as JavaScript computes it on Float32Arrays: float(double(y) + double(v) * double(w)). The
// product of two floats is exact in double, so this is the exact y + v*w rounded to double, then to float; a
// fused multiply-add in float rounds the exact value once, which gives the same float unless the exact sum
// lies within 2^-53 (relative) of a point halfway between two floats, where the double rounding can tip it.
// That case is taken as never seen: the decisions test (runtime/test/offload/prefetch-twin.test.ts) would
// show it. In float the loop vectorizes 16 wide without conversions; compiled for AVX-512 and AVX2 besides
// the baseline, chosen at load by the CPU (the build itself targets any x86-64).
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx512f", "arch=haswell", "default")))
#endif
void accumulate_row(float* __restrict y, const float* __restrict w, float v, int n) {
  for (int c = 0; c < n; ++c) y[c] = std::fma(v, w[c], y[c]);
}

int block_width(const PredictorBlock& b, const PredictorModel& m) {
  if (b.kind == PredictorBlock::Kind::Layer) return m.moe_layers;
  return b.per_layer ? m.moe_layers * m.num_experts : m.num_experts;
}

}  // namespace

PredictorMlp::PredictorMlp(PredictorModel model) : m_(std::move(model)) {
  const std::string what = "option --predictor: ";
  if (m_.moe_layers < 1 || m_.num_experts < 1 || m_.top_k < 1 || m_.top_k > m_.num_experts) throw Error(what + "geometry must have >= 1 layer and 1 <= topK <= experts");
  if (m_.lookahead < 1 || m_.lookahead >= m_.moe_layers) throw Error(what + "lookahead " + std::to_string(m_.lookahead) + " must be from 1 to " + std::to_string(m_.moe_layers - 1));
  if (m_.budget < 1 || m_.budget > m_.num_experts) throw Error("option --predictor-budget: " + std::to_string(m_.budget) + " must be from 1 to " + std::to_string(m_.num_experts));
  if (m_.blocks.empty()) throw Error(what + "the feature spec has no blocks");
  for (const PredictorBlock& b : m_.blocks) {
    // features.ts featureSpecProblems: a block may not read routing the run has not produced yet.
    if (b.kind == PredictorBlock::Kind::Routing && (b.token_offset > 0 || (b.token_offset == 0 && b.layer_offset > 0))) {
      throw Error(what + "a feature block reads routing not yet computed (token offset " + std::to_string(b.token_offset) + ", layer offset " + std::to_string(b.layer_offset) + ")");
    }
    width_ += block_width(b, m_);
  }
  if (m_.layers.empty()) throw Error(what + "the MLP has no layers");
  int in = width_;
  for (size_t n = 0; n < m_.layers.size(); ++n) {
    const PredictorLayer& l = m_.layers[n];
    if (l.in != in) throw Error(what + "layer " + std::to_string(n) + " takes " + std::to_string(l.in) + " inputs, the one before gives " + std::to_string(in));
    if (l.out < 1 || l.weight_t.size() != static_cast<size_t>(l.in) * l.out || l.bias.size() != static_cast<size_t>(l.out)) {
      throw Error(what + "layer " + std::to_string(n) + "'s weights or bias do not have its shape");
    }
    in = l.out;
  }
  if (in != m_.num_experts) throw Error(what + "the MLP gives " + std::to_string(in) + " logits, the model has " + std::to_string(m_.num_experts) + " experts");
}

PredictorScratch PredictorMlp::make_scratch() const {
  PredictorScratch s;
  s.features.assign(static_cast<size_t>(width_), 0.f);
  for (const PredictorLayer& l : m_.layers) s.act.emplace_back(static_cast<size_t>(l.out), 0.f);
  s.rank.resize(static_cast<size_t>(m_.budget));
  return s;
}

void gather_predictor_inputs(const PredictorModel& m, PredictorScratch& s, const int32_t* experts, const float* weights, int length, int t, int i) {
  auto add_input = [&s](int index, float value) {
    float& f = s.features[static_cast<size_t>(index)];
    if (f == 0.f) s.touched.push_back(index);
    f = static_cast<float>(static_cast<double>(f) + static_cast<double>(value));
  };
  const int L = m.moe_layers, E = m.num_experts, k = m.top_k;
  if (t < 0 || t >= length || i < 0 || i + m.lookahead >= L) throw Error("prefetch predicted: no prediction for token " + std::to_string(t) + " at MoE layer " + std::to_string(i));
  // Sparse: only the nonzero entries are written, then visited ascending.
  s.touched.clear();
  int o = 0;
  for (const PredictorBlock& b : m.blocks) {
    if (b.kind == PredictorBlock::Kind::Layer) {
      add_input(o + i, 1.f);
    } else {
      const int tt = t + b.token_offset, l = i + b.layer_offset;
      if (tt >= 0 && tt < length && l >= 0 && l < L) {
        const size_t base = (static_cast<size_t>(tt) * L + l) * k;
        const int slot = b.per_layer ? o + i * E : o;
        for (int j = 0; j < k; ++j) {
          const int32_t e = experts[base + j];
          if (e < 0 || e >= E) throw Error("prefetch predicted: the replayed routing names expert " + std::to_string(e) + " (token " + std::to_string(tt) + ", MoE layer " + std::to_string(l) + ")");
          add_input(slot + e, weights[base + j]);
        }
      }
    }
    o += block_width(b, m);
  }
  std::sort(s.touched.begin(), s.touched.end());
}

void clear_predictor_inputs(PredictorScratch& s) {
  for (int idx : s.touched) s.features[static_cast<size_t>(idx)] = 0.f;
}

int PredictorMlp::predict(PredictorScratch& s, const int32_t* experts, const float* weights, int length, int t, int i, int32_t* out) const {
  const int E = m_.num_experts;
  gather_predictor_inputs(m_, s, experts, weights, length, t, i);
  // Layers (infer.ts forwardRow): y = bias, then y[o] += v * W^T[i][o] for each nonzero input i, ascending.
  const float* input = s.features.data();
  const int* nz = s.touched.data();
  const int n_nz = static_cast<int>(s.touched.size());
  for (size_t n = 0; n < m_.layers.size(); ++n) {
    const PredictorLayer& l = m_.layers[n];
    std::vector<float>& y = s.act[n];
    std::copy(l.bias.begin(), l.bias.end(), y.begin());
    for (int q = 0; q < (n == 0 ? n_nz : l.in); ++q) {
      const int idx = n == 0 ? nz[q] : q;
      const float v = input[idx];
      if (v == 0.f) continue;
      accumulate_row(y.data(), l.weight_t.data() + static_cast<size_t>(idx) * l.out, v, l.out);
    }
    if (n + 1 < m_.layers.size()) {
      for (float& v : y) if (v < 0.f) v = 0.f;
    }
    input = y.data();
  }
  clear_predictor_inputs(s);  // back to all zero for the next call
  // Top `budget` (metrics.ts topIndices: insertion, the earlier expert first on equal logits).
  const float* lg = input;
  const int count = m_.budget;
  int filled = 0;
  for (int e = 0; e < E; ++e) {
    const float x = lg[e];
    if (filled < count) {
      int p = filled++;
      while (p > 0 && lg[s.rank[static_cast<size_t>(p) - 1]] < x) {
        s.rank[static_cast<size_t>(p)] = s.rank[static_cast<size_t>(p) - 1];
        --p;
      }
      s.rank[static_cast<size_t>(p)] = e;
    } else if (x > lg[s.rank[static_cast<size_t>(count) - 1]]) {
      int p = count - 1;
      while (p > 0 && lg[s.rank[static_cast<size_t>(p) - 1]] < x) {
        s.rank[static_cast<size_t>(p)] = s.rank[static_cast<size_t>(p) - 1];
        --p;
      }
      s.rank[static_cast<size_t>(p)] = e;
    }
  }
  // annotate.ts applyPredictions: keep the ids whose logit reaches the confidence gate.
  int kept = 0;
  for (int j = 0; j < count; ++j) {
    const int e = s.rank[static_cast<size_t>(j)];
    if (static_cast<double>(lg[e]) >= m_.min_logit) out[kept++] = e;
  }
  return kept;
}

}  // namespace offload
}  // namespace moe
