#include <string>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda_factory.h"

namespace tandem {

Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device,
                                               const BackendOptions& options) {
  if (device == "cpu") return CreateCpuBackend(options);
  if (device == "cuda") return CreateCudaBackend(options);
  return InvalidArgumentError("unknown device '" + std::string(device) +
                              "' (expected 'cpu' or 'cuda')");
}

}  // namespace tandem
