// MLA attention for one (query token, head) on the compact cache, in the absorbed form:
//   k_nope[t] = W_kb c[t]  =>  q_nope . k_nope[t] = (W_kb^T q_nope) . c[t]
//   v[t] = W_vb c[t]       =>  sum_t p_t v[t] = W_vb (sum_t p_t c[t])
// so neither per-head keys nor values are ever materialised. Mathematically identical to
// transformers' expand-then-attend; only the fp32 summation order differs.
#include <algorithm>
#include <cmath>

#include "moe/kernels.h"

namespace moe {

void mla_attend_head(const float* q_head, const float* cache, int cache_stride, int ctx, const float* kv_b,
                     const MlaDims& d, int head, float* out_head, float* scratch) {
  float* q_lat = scratch;               // [kv_lora]
  float* o_lat = scratch + d.kv_lora;   // [kv_lora]
  float* p = scratch + 2 * d.kv_lora;   // [ctx]
  const float* q_nope = q_head;
  const float* q_pe = q_head + d.nope;
  const float* w_head = kv_b + static_cast<size_t>(head) * (d.nope + d.v) * d.kv_lora;

  std::fill(q_lat, q_lat + d.kv_lora, 0.0f);
  for (int i = 0; i < d.nope; ++i) {
    const float qi = q_nope[i];
    const float* w = w_head + static_cast<size_t>(i) * d.kv_lora;
    for (int j = 0; j < d.kv_lora; ++j) q_lat[j] += qi * w[j];
  }

  float max_score = -INFINITY;
  for (int t = 0; t < ctx; ++t) {
    const float* row = cache + static_cast<size_t>(t) * cache_stride;
    float s = 0.f;
    for (int j = 0; j < d.kv_lora; ++j) s += q_lat[j] * row[j];
    float r = 0.f;
    for (int j = 0; j < d.rope; ++j) r += q_pe[j] * row[d.kv_lora + j];
    p[t] = (s + r) * d.scale;
    max_score = std::max(max_score, p[t]);
  }
  float sum = 0.f;
  for (int t = 0; t < ctx; ++t) {
    p[t] = std::exp(p[t] - max_score);
    sum += p[t];
  }
  const float inv = 1.0f / sum;

  std::fill(o_lat, o_lat + d.kv_lora, 0.0f);
  for (int t = 0; t < ctx; ++t) {
    const float pt = p[t] * inv;
    const float* row = cache + static_cast<size_t>(t) * cache_stride;
    for (int j = 0; j < d.kv_lora; ++j) o_lat[j] += pt * row[j];
  }

  const float* w_v = w_head + static_cast<size_t>(d.nope) * d.kv_lora;
  for (int e = 0; e < d.v; ++e) {
    const float* w = w_v + static_cast<size_t>(e) * d.kv_lora;
    float s = 0.f;
    for (int j = 0; j < d.kv_lora; ++j) s += w[j] * o_lat[j];
    out_head[e] = s;
  }
}

}  // namespace moe
