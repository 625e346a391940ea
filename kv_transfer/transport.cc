#include "kv_transfer/transport.h"

#include <string>

namespace tandem {

Status WaitForTransfer(Transport& transport, TransferId id, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(bool done, transport.Poll(id));
    if (done) return Status::Ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError("transfer " + std::to_string(id) + " not complete after " +
                                   std::to_string(timeout.count()) + " ms");
    }
  }
}

Status CheckDescriptorBounds(std::span<const TransferDescriptor> descriptors,
                             uint64_t local_bytes, uint64_t remote_bytes) {
  for (size_t i = 0; i < descriptors.size(); ++i) {
    const TransferDescriptor& d = descriptors[i];
    const std::string where = "descriptor " + std::to_string(i);
    if (d.bytes == 0) return InvalidArgumentError(where + " has 0 bytes");
    // Written as subtractions so that huge offsets cannot wrap around.
    if (d.bytes > local_bytes || d.src_offset > local_bytes - d.bytes) {
      return OutOfRangeError(where + " reads [" + std::to_string(d.src_offset) + ", +" +
                             std::to_string(d.bytes) + ") past the local region of " +
                             std::to_string(local_bytes) + " bytes");
    }
    if (d.bytes > remote_bytes || d.dst_offset > remote_bytes - d.bytes) {
      return OutOfRangeError(where + " writes [" + std::to_string(d.dst_offset) + ", +" +
                             std::to_string(d.bytes) + ") past the remote region of " +
                             std::to_string(remote_bytes) + " bytes");
    }
  }
  return Status::Ok();
}

}  // namespace tandem
