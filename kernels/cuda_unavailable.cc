#include "kernels/cuda_factory.h"

namespace tandem {

Result<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions&) {
  return UnavailableError(
      "this build of tandem has no CUDA backend (nvcc was not found or TANDEM_CUDA=OFF)");
}

}  // namespace tandem
