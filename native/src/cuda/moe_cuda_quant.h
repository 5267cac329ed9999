#pragma once
// PLACEHOLDER (helper qhost): the GPU kernels of quantized routed experts (issue 13), declared exactly
// as /work/main/.scratch/quant-api.md fixes them, so the backend that calls them compiles and links
// before helper qgpu's kernels land. qgpu's moe_cuda_quant.h (with its documentation) replaces this
// file; the definitions meanwhile are expert_ffn_quant_stub.cu, which throws "not built".
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "moe/quant/expert_format.h"

namespace moe::cuda {

using bf16 = __nv_bfloat16;

// Byte offsets inside one expert blob, as the kernels take them (by value; from ExpertLayout).
struct QuantLayout {
  int dtype;  // moe::quant::ExpertDType as int: 1 int8, 2 int4 (bf16 experts use the bf16 kernels)
  int hidden, d_ff, group;
  size_t gate_q, up_q, down_q, gate_scale, up_scale, down_scale, gate_zero, up_zero, down_zero;
};
QuantLayout to_quant_layout(const moe::quant::ExpertLayout& L);  // throws for BF16
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
// the bf16 expert layout, so the existing per-expert GEMMs run on it.
void dequantize_expert_bf16(const uint8_t* blob, const QuantLayout& L, bf16* out, cudaStream_t stream);

}  // namespace moe::cuda
