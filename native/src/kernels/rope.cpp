// RoPE of the MLA rotary part, following transformers' implementation step for step:
// _compute_yarn_parameters (inv_freq blend, attention_factor on cos/sin), yarn_apply_mscale
// (softmax scale) and apply_rotary_emb (complex rotation of interleaved pairs).
#include <algorithm>
#include <cmath>

#include "moe/kernels.h"

namespace moe {

namespace {

double yarn_get_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double yarn_factor(const ModelConfig& c) {
  if (c.rope.factor > 0) return c.rope.factor;
  return static_cast<double>(c.max_position_embeddings) / c.rope.original_max_position_embeddings;
}

double find_correction_dim(double num_rotations, int dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (num_rotations * 2.0 * M_PI))) / (2.0 * std::log(base));
}

}  // namespace

RopeTable make_rope_table(const ModelConfig& c) {
  RopeTable t;
  const int dim = c.qk_rope_head_dim;
  t.dim = dim;
  t.inv_freq.resize(static_cast<size_t>(dim / 2));
  const float base = static_cast<float>(c.rope.theta);
  // pos_freqs = base ** (arange(0, dim, 2).float() / dim), in fp32 like torch.
  std::vector<float> pos_freqs(static_cast<size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    pos_freqs[i] = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
  }
  if (c.rope.type != "yarn") {
    for (int i = 0; i < dim / 2; ++i) t.inv_freq[i] = 1.0f / pos_freqs[i];
    t.attention_factor = 1.0f;
    return t;
  }
  const double factor = yarn_factor(c);
  const RopeConfig& r = c.rope;
  double attention_factor = r.attention_factor;
  if (attention_factor <= 0) {
    attention_factor = (r.mscale != 0 && r.mscale_all_dim != 0)
                           ? yarn_get_mscale(factor, r.mscale) / yarn_get_mscale(factor, r.mscale_all_dim)
                           : yarn_get_mscale(factor, 1.0);
  }
  t.attention_factor = static_cast<float>(attention_factor);
  const double beta_fast = r.beta_fast != 0 ? r.beta_fast : 32.0;
  const double beta_slow = r.beta_slow != 0 ? r.beta_slow : 1.0;
  double low = find_correction_dim(beta_fast, dim, r.theta, r.original_max_position_embeddings);
  double high = find_correction_dim(beta_slow, dim, r.theta, r.original_max_position_embeddings);
  if (r.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // as transformers: avoids a zero-width ramp
  const float ffactor = static_cast<float>(factor);
  for (int i = 0; i < dim / 2; ++i) {
    const float ramp = std::clamp(static_cast<float>((static_cast<float>(i) - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    const float extra = 1.0f / pos_freqs[i];
    const float inter = 1.0f / (ffactor * pos_freqs[i]);
    t.inv_freq[i] = inter * (1.0f - extrapolation_factor) + extra * extrapolation_factor;
  }
  return t;
}

float attention_softmax_scale(const ModelConfig& c) {
  double scale = std::pow(static_cast<double>(c.qk_head_dim()), -0.5);
  if (c.rope.type == "yarn" && c.rope.mscale_all_dim != 0) {
    const double m = yarn_get_mscale(c.rope.factor > 0 ? c.rope.factor : yarn_factor(c), c.rope.mscale_all_dim);
    scale = scale * m * m;
  }
  return static_cast<float>(scale);
}

void rope_interleaved(float* v, int pos, const RopeTable& table) {
  for (int i = 0; i < table.dim / 2; ++i) {
    const float angle = static_cast<float>(pos) * table.inv_freq[i];
    const float c = static_cast<float>(std::cos(static_cast<double>(angle))) * table.attention_factor;
    const float s = static_cast<float>(std::sin(static_cast<double>(angle))) * table.attention_factor;
    const float a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * c - b * s;
    v[2 * i + 1] = a * s + b * c;
  }
}

}  // namespace moe
