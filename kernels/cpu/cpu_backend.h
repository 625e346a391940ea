// The reference backend: fp32 activations and KV cache, weights used in their stored dtype
// (F32, F16, BF16) and widened to fp32 on the fly. Multithreaded with OpenMP; large matrix
// products go through OpenBLAS.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace tandem {

Result<std::unique_ptr<Backend>> CreateCpuBackend(const BackendOptions& options);

}  // namespace tandem
