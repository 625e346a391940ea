// The reference the CUDA backend is compared with. In the main build it is the CPU backend
// (reference_cpu_backend.cc); the standalone GPU build (kernels/cuda/standalone), which has no
// OpenBLAS, links plain fp32 loops instead (reference_loops.cc). Which one is chosen by which
// file links, not by #ifdef.
#pragma once

#include <memory>
#include <string>

#include "kernels/backend.h"

namespace tandem::gpu_test {

Result<std::unique_ptr<Backend>> CreateReferenceBackend();
std::string ReferenceName();

}  // namespace tandem::gpu_test
