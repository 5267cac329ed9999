// PLACEHOLDER (helper qhost), NOT the kernels: every quantized-expert entry point of moe_cuda_quant.h
// throws CudaError "not built", so the backend and calibrate link (and refuse int8 / int4 with a clear
// message) until helper qgpu's kernels replace this file. Remove it from native/CMakeLists.txt then.
#include "cuda_check.h"
#include "moe_cuda_quant.h"

namespace moe::cuda {

namespace {
[[noreturn]] void not_built(const char* what) {
  throw CudaError(std::string(what) + ": the quantized (int8 / int4) GPU expert kernels are not built in this tree (placeholder "
                  "expert_ffn_quant_stub.cu)");
}
}  // namespace

QuantLayout to_quant_layout(const moe::quant::ExpertLayout&) { not_built("to_quant_layout"); }
bool expert_ffn_q_supported(const QuantLayout&, int) { not_built("expert_ffn_q_supported"); }
size_t expert_ffn_decode_q_workspace_bytes(int, int, int, const QuantLayout&) { not_built("expert_ffn_decode_q_workspace_bytes"); }
void expert_ffn_decode_q_entries(const bf16*, int, int, const int32_t*, const float*, int, int, const uint8_t* const*, const QuantLayout&,
                                 void*, size_t, cudaStream_t, float*) {
  not_built("expert_ffn_decode_q_entries");
}
size_t expert_ffn_grouped_q_workspace_bytes(int, int, int, const QuantLayout&) { not_built("expert_ffn_grouped_q_workspace_bytes"); }
void expert_ffn_grouped_q_entries(const bf16*, int, int, const int32_t*, const float*, int, int, const uint8_t* const*, const QuantLayout&,
                                  void*, size_t, cudaStream_t, float*) {
  not_built("expert_ffn_grouped_q_entries");
}
void dequantize_expert_bf16(const uint8_t*, const QuantLayout&, bf16*, cudaStream_t) { not_built("dequantize_expert_bf16"); }

}  // namespace moe::cuda
