# CMake fragment: the CUDA kernels of native/src/cuda as the static library moe_cuda_kernels.
# Include it from a project that enabled the CUDA language (native/tests/cuda/CMakeLists.txt does;
# the engine's CMakeLists can include it when CUDA is found). Targets sm_90a (H100/H200), -O3,
# links cuBLAS and cuBLASLt. CUDAToolkit_ROOT may point at another toolkit / cuBLAS location.
# project() already set CMAKE_CUDA_ARCHITECTURES to the compiler's default (an old sm_xx), so the
# architecture is a target property here; MOE_CUDA_ARCHITECTURES overrides it (e.g. "90a;100a").
set(MOE_CUDA_ARCHITECTURES "90a" CACHE STRING "CUDA architectures of moe_cuda_kernels")
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

set(MOE_CUDA_DIR ${CMAKE_CURRENT_LIST_DIR}/src/cuda)
add_library(moe_cuda_kernels STATIC
  ${MOE_CUDA_DIR}/rmsnorm.cu
  ${MOE_CUDA_DIR}/rope_yarn.cu
  ${MOE_CUDA_DIR}/mla_cache_append.cu
  ${MOE_CUDA_DIR}/mla_attention_prefill.cu
  ${MOE_CUDA_DIR}/mla_attention_decode.cu
  ${MOE_CUDA_DIR}/router_topk.cu
  ${MOE_CUDA_DIR}/silu_mul.cu
  ${MOE_CUDA_DIR}/expert_ffn_grouped.cu
  ${MOE_CUDA_DIR}/expert_ffn_decode.cu
  ${MOE_CUDA_DIR}/expert_ffn_quant_decode.cu
  ${MOE_CUDA_DIR}/expert_ffn_quant_grouped.cu
  ${MOE_CUDA_DIR}/dequantize_expert.cu
  ${MOE_CUDA_DIR}/moe_gather.cu
  ${MOE_CUDA_DIR}/linear_cublas.cu
  ${MOE_CUDA_DIR}/embedding.cu
  ${MOE_CUDA_DIR}/sampling.cu)
# native/include: moe_cuda_quant.h takes the expert layout from moe/quant/expert_format.h.
target_include_directories(moe_cuda_kernels PUBLIC ${MOE_CUDA_DIR} ${CMAKE_CURRENT_LIST_DIR}/include)
target_compile_options(moe_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -Xptxas=-warn-spills>)
set_target_properties(moe_cuda_kernels PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF
                      CUDA_ARCHITECTURES "${MOE_CUDA_ARCHITECTURES}")
target_link_libraries(moe_cuda_kernels PUBLIC CUDA::cudart CUDA::cublas CUDA::cublasLt)
