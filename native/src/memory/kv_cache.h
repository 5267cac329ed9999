#pragma once
// The compact MLA cache of one sequence: per layer and position, [c_kv normalised (kv_lora_rank) |
// k_pe rotated (qk_rope_head_dim)] in fp32 (fp32 rather than bf16 so the CPU forward stays exact
// against an fp32 reference). Allocated once per generation at its final capacity.
#include <cstddef>
#include <vector>

namespace moe {

class KvCache {
 public:
  KvCache(int layers, int capacity, int width)
      : layers_(layers), capacity_(capacity), width_(width),
        data_(static_cast<size_t>(layers) * capacity * width, 0.0f) {}

  int capacity() const { return capacity_; }
  int width() const { return width_; }
  int length = 0;  // tokens cached (the same for every layer between forwards)

  float* row(int layer, int pos) { return data_.data() + (static_cast<size_t>(layer) * capacity_ + pos) * width_; }

 private:
  int layers_, capacity_, width_;
  std::vector<float> data_;  // [layers, capacity, width]
};

}  // namespace moe
