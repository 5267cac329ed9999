#include <algorithm>
#include <cmath>
#include <vector>

#include "moe/kernels.h"

namespace moe {

// DeepSeek-V2's MoEGate with scoring_func softmax and topk_method greedy:
//   scores = softmax(logits); top-k by score;
//   if k > 1 and norm_topk_prob: weights = scores / (sum of the k + 1e-20)
//   else:                        weights = scores * routed_scaling_factor
// (the original modeling_deepseek.py; the scaling factor is not applied after renormalising).
void route_topk(const float* router_logits, int T, int n_experts, int k, bool norm_topk_prob,
                double routed_scaling_factor, int32_t* idx, float* weight) {
  std::vector<float> scores(static_cast<size_t>(n_experts));
  std::vector<int32_t> order(static_cast<size_t>(n_experts));
  for (int t = 0; t < T; ++t) {
    const float* lg = router_logits + static_cast<size_t>(t) * n_experts;
    const float mx = *std::max_element(lg, lg + n_experts);
    float sum = 0.f;
    for (int e = 0; e < n_experts; ++e) {
      scores[e] = std::exp(lg[e] - mx);
      sum += scores[e];
    }
    for (int e = 0; e < n_experts; ++e) scores[e] /= sum;
    for (int e = 0; e < n_experts; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
    });
    int32_t* ti = idx + static_cast<size_t>(t) * k;
    float* tw = weight + static_cast<size_t>(t) * k;
    float total = 0.f;
    for (int j = 0; j < k; ++j) {
      ti[j] = order[j];
      tw[j] = scores[order[j]];
      total += tw[j];
    }
    if (k > 1 && norm_topk_prob) {
      const float denom = total + 1e-20f;
      for (int j = 0; j < k; ++j) tw[j] /= denom;
    } else {
      for (int j = 0; j < k; ++j) tw[j] = static_cast<float>(tw[j] * routed_scaling_factor);
    }
  }
}

}  // namespace moe
