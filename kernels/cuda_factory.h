// Implemented by kernels/cuda/ when the build has CUDA, else by cuda_unavailable.cc.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace tandem {

Result<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options);

}  // namespace tandem
