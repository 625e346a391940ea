// CUDA and cuBLAS errors as tandem::Status, recording the failing call and file:line so that a
// failure far from its cause (asynchronous launches) still names where it was noticed.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <string>

#include "common/status.h"

namespace tandem::cuda {

inline Status CudaError(cudaError_t err, const char* expr, const char* file, int line) {
  return InternalError(std::string(expr) + " failed at " + file + ":" + std::to_string(line) +
                       ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

inline Status CublasError(cublasStatus_t st, const char* expr, const char* file, int line) {
  return InternalError(std::string(expr) + " failed at " + file + ":" + std::to_string(line) +
                       ": cuBLAS status " + std::to_string(static_cast<int>(st)));
}

}  // namespace tandem::cuda

// Returns an INTERNAL Status when a cudaError_t-valued expression is not cudaSuccess.
#define CUDA_RETURN_IF_ERROR(expr)                                                   \
  do {                                                                               \
    const cudaError_t _tandem_cuda_err = (expr);                                     \
    if (_tandem_cuda_err != cudaSuccess)                                             \
      return ::tandem::cuda::CudaError(_tandem_cuda_err, #expr, __FILE__, __LINE__); \
  } while (0)

// Same for cublasStatus_t (cuBLAS and cuBLASLt).
#define CUBLAS_RETURN_IF_ERROR(expr)                                                    \
  do {                                                                                  \
    const cublasStatus_t _tandem_cublas_st = (expr);                                    \
    if (_tandem_cublas_st != CUBLAS_STATUS_SUCCESS)                                     \
      return ::tandem::cuda::CublasError(_tandem_cublas_st, #expr, __FILE__, __LINE__); \
  } while (0)
