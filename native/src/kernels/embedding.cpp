#include <string>

#include "moe/error.h"
#include "moe/kernels.h"

namespace moe {

void embedding(const Matrix& embed, const int32_t* ids, int T, float* out) {
  for (int t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= embed.rows) {
      throw Error("token id " + std::to_string(ids[t]) + " is outside the vocabulary [0, " + std::to_string(embed.rows) + ")");
    }
    matrix_row_to_f32(embed, ids[t], out + static_cast<size_t>(t) * embed.cols);
  }
}

}  // namespace moe
