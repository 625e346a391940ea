// One contiguous copy between two registered memory regions: the unit the layout produces and
// the transport moves. Offsets are relative to each side's registered base, never raw pointers,
// so a descriptor list can be built before (and independently of) knowing the peer's address.
#pragma once

#include <cstdint>

namespace tandem {

struct TransferDescriptor {
  uint64_t src_offset = 0;  // into the local (sending) region
  uint64_t dst_offset = 0;  // into the remote (receiving) region
  uint64_t bytes = 0;

  friend bool operator==(const TransferDescriptor&, const TransferDescriptor&) = default;
};

}  // namespace tandem
