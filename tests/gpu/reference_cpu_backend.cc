#include "tests/gpu/reference_backend.h"

namespace tandem::gpu_test {

Result<std::unique_ptr<Backend>> CreateReferenceBackend() {
  return CreateBackend("cpu");
}
std::string ReferenceName() {
  return "cpu backend";
}

}  // namespace tandem::gpu_test
