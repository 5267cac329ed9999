#pragma once
// Every CUDA runtime and cuBLAS status becomes a C++ exception carrying file, line, the failed
// expression and the library's own error string. Nothing here calls exit() or abort(): the engine
// and the Node addon above it turn these into JS errors.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace moe::cuda {

class CudaError : public std::runtime_error {
 public:
  explicit CudaError(const std::string& message) : std::runtime_error(message) {}
};

inline const char* cublas_status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_<unknown>";
  }
}

[[noreturn]] inline void throw_cuda_error(const char* what, const char* detail, const char* file, int line) {
  std::ostringstream os;
  os << file << ":" << line << ": " << what << " failed: " << detail;
  throw CudaError(os.str());
}

inline void check_cuda(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess) {
    std::string detail = std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
    throw_cuda_error(expr, detail.c_str(), file, line);
  }
}

inline void check_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_cuda_error(expr, cublas_status_string(s), file, line);
}

// Argument checks of the launchers: a bad shape is a programming error of the caller, reported
// the same way (an exception naming the launcher and the condition), never a silent wrong answer.
inline void check_arg(bool ok, const char* condition, const char* function, const char* file, int line) {
  if (!ok) throw_cuda_error(function, (std::string("argument check '") + condition + "'").c_str(), file, line);
}

}  // namespace moe::cuda

#define CUDA_CHECK(expr) ::moe::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)
#define CUBLAS_CHECK(expr) ::moe::cuda::check_cublas((expr), #expr, __FILE__, __LINE__)
// After a launch: catches bad launch configurations at once (does not synchronise, so it is safe
// inside CUDA graph capture); errors of the running kernel surface at the next synchronising call.
#define CUDA_CHECK_LAUNCH() ::moe::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
#define MOE_CUDA_REQUIRE(cond) ::moe::cuda::check_arg((cond), #cond, __func__, __FILE__, __LINE__)
