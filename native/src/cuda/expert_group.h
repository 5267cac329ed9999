#pragma once
// Device-side grouping of routed entries by expert, shared by the bf16 and the quantized expert FFN
// kernels (the kernels themselves live in expert_ffn_decode.cu and expert_ffn_grouped.cu; these are
// their launchers, so the quantized paths group tokens exactly as the bf16 paths do).
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda::detail {

// Rows of one m-tile of the grouped (tile) kernels: launch_group_tiles lists (expert, m0) pairs of it.
constexpr int kGroupTileRows = 64;

// 1 block: counts / offsets [n_experts + 1] / active experts (n_active of them) / pos / sorted
// entries; entries with a negative expert id are skipped. n_experts <= 256. (expert_ffn_decode.cu)
void launch_group_small(const int32_t* expert, int entries, int n_experts, int32_t* counts, int32_t* offsets,
                        int32_t* active, int32_t* n_active, int32_t* pos, int32_t* sorted, cudaStream_t stream);

// 1 block: counts, offsets, pos, sorted and the (tile_expert, tile_m) list of kGroupTileRows-row
// tiles (n_tiles of them, at most max_tiles). (expert_ffn_grouped.cu)
void launch_group_tiles(const int32_t* expert, int entries, int n_experts, int max_tiles, int32_t* counts,
                        int32_t* offsets, int32_t* pos, int32_t* sorted, int32_t* tile_expert, int32_t* tile_m,
                        int32_t* n_tiles, cudaStream_t stream);

}  // namespace moe::cuda::detail
