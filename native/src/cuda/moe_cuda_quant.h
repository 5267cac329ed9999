#pragma once
// CUDA kernels of the quantized routed experts (issue 13): the bf16 expert FFN's contract
// (moe_cuda_kernels.h, *_entries with expert_out) on int8 / int4 expert blobs (format:
// moe/quant/expert_format.h; meaning: moe::quant::dequantize_row). The weights are read in their
// stored form and dequantized on the fly; arithmetic in fp32, bf16 where the bf16 path rounds.
//   - expert_ffn_decode_q_entries (rows <= 32): grouped GEMV, weights dequantized in registers,
//     exact fp32 dequantization (w = q * s, w = (q - z) * s folded into per-chunk sums).
//   - expert_ffn_grouped_q_entries (33..2047 rows): WMMA tiles; each weight tile is dequantized to
//     bf16 (the value dequantize_expert_bf16 gives) on its way into shared memory.
//   - dequantize_expert_bf16 (>= 2048 rows): the whole expert as bf16 for the cuBLAS path.
// Shapes: expert_ffn_q_supported(). Blob pointers must be 16-byte aligned (cache slots are 256).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "moe/quant/expert_format.h"
#include "moe_cuda_kernels.h"

namespace moe::cuda {

// Byte offsets inside one expert blob, as the kernels take them (by value; from ExpertLayout).
struct QuantLayout {
  int dtype;  // moe::quant::ExpertDType as int: 1 int8, 2 int4 (bf16 experts use the bf16 kernels)
  int hidden, d_ff, group;
  size_t gate_q, up_q, down_q, gate_scale, up_scale, down_scale, gate_zero, up_zero, down_zero;
};

QuantLayout to_quant_layout(const moe::quant::ExpertLayout& L);  // throws CudaError for BF16

// Both quantized FFN paths handle this shape: int8 or int4; hidden, d_ff multiples of 64; int8:
// hidden, d_ff <= 2048; int4: hidden, d_ff <= 4096 and group % 32 == 0 (a 16-byte chunk of 32
// weights lies in one group); 0 < n_experts <= 256.
bool expert_ffn_q_supported(const QuantLayout& L, int n_experts);

// Same contract as expert_ffn_decode_entries / expert_ffn_grouped_entries with expert_out given:
// entries with a negative expert id are skipped; each computed entry (t * k + j) gets
// weight[t, j] * expert(x[t]) in expert_out (fp32 [rows * k, hidden]); blobs: device array [n_experts]
// of device pointers to each expert's blob (null for experts not computed in this launch).
size_t expert_ffn_decode_q_workspace_bytes(int rows, int k, int n_experts, const QuantLayout& L);
void expert_ffn_decode_q_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                                 int n_experts, const uint8_t* const* blobs, const QuantLayout& L, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream, float* expert_out);  // rows <= 32
size_t expert_ffn_grouped_q_workspace_bytes(int rows, int k, int n_experts, const QuantLayout& L);
void expert_ffn_grouped_q_entries(const bf16* x, int rows, int x_stride, const int32_t* expert, const float* weight, int k,
                                  int n_experts, const uint8_t* const* blobs, const QuantLayout& L, void* workspace,
                                  size_t workspace_bytes, cudaStream_t stream, float* expert_out);  // 33..2047 rows
// For the >= 2048-row cuBLAS path: out = gate | up | down as bf16 ([2 d_ff, hidden] then [hidden, d_ff]),
// the bf16 expert layout, so the existing per-expert GEMMs run on it. Each value is
// bf16(dequantize_row(...)) exactly (round to nearest even).
void dequantize_expert_bf16(const uint8_t* blob, const QuantLayout& L, bf16* out, cudaStream_t stream);

}  // namespace moe::cuda
