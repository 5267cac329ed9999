#include "moe/moe_plan.h"

#include <string>

#include "moe/error.h"

namespace moe {

void MoePlan::group(int n_experts) {
  std::vector<int32_t> count(static_cast<size_t>(n_experts), 0);
  for (int32_t e : expert) {
    if (e < 0 || e >= n_experts) {
      throw Error("MoE plan of layer " + std::to_string(layer) + ": expert " + std::to_string(e) + " outside [0, " +
                  std::to_string(n_experts) + ")");
    }
    ++count[e];
  }
  active.clear();
  group_begin.assign(1, 0);
  for (int e = 0; e < n_experts; ++e) {
    if (!count[e]) continue;
    active.push_back(e);
    group_begin.push_back(group_begin.back() + count[e]);
  }
  group_token.resize(expert.size());
  group_weight.resize(expert.size());
  std::vector<int32_t> cursor(static_cast<size_t>(n_experts), 0);
  for (size_t i = 0; i < active.size(); ++i) cursor[active[i]] = group_begin[i];
  // Tokens ascending within an expert, matching transformers' index order.
  for (int t = 0; t < tokens; ++t) {
    for (int j = 0; j < k; ++j) {
      const size_t slot = static_cast<size_t>(t) * k + j;
      const int32_t pos = cursor[expert[slot]]++;
      group_token[pos] = t;
      group_weight[pos] = weight[slot];
    }
  }
}

}  // namespace moe
