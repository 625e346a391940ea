#include "kernels/cpu/cpu_backend.h"

namespace tandem {

// Placeholder replaced by the real CPU backend in the next change.
Result<std::unique_ptr<Backend>> CreateCpuBackend(const BackendOptions&) {
  return UnimplementedError("CPU backend not built yet");
}

}  // namespace tandem
