#pragma once
// CONTROL: a plain sequential sum of the 32 lane values ((v0 + v1) + v2) + ... + v31, broadcast to all lanes.
namespace moe::cuda::detail {
inline float emu_seq_warp_sum(float v) {
  float all[32];
  emu_gather32(v, all);
  float s = all[0];
  for (int l = 1; l < 32; ++l) s += all[l];
  return s;
}
}  // namespace moe::cuda::detail
