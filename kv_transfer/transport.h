// How bytes move: the transport interface, in the style of NIXL's backends. A transfer is a list
// of descriptors (local offset, remote offset, bytes) posted as one-sided PUTs into a peer's
// registered region; the lifecycle is
//
//   RegisterMemory (once) -> Connect(peer) (once per peer) -> PostPut -> PostFlush -> Poll... -> Release
//
// and the exchange of LocalEndpoint() between nodes happens outside, over the control plane
// (proto/): the transport only produces and consumes opaque blobs.
//
// Completion semantics (the contract the session relies on):
//  - a PUT transfer is complete when its local source bytes may be reused; the bytes are NOT
//    yet guaranteed visible at the peer;
//  - a FLUSH transfer is complete only when every PUT posted to that peer before it is visible
//    in the peer's memory. "KV ready" may be sent to the peer only after a flush completed.
//
// Threads: a Transport is owned by one thread (the node's engine loop) and every method is
// called from that thread; none is thread-safe. Progress() must be called by the owner
// regularly on BOTH sides when capabilities().target_must_progress (a UCX shared-memory put may
// be emulated with active messages that the target's worker has to process).
//
// Backends differ by capabilities, never by #ifdef in callers.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kv_transfer/transfer_descriptor.h"

namespace tandem {

enum class MemoryKind : uint8_t { kHost, kCuda };

struct TransportCapabilities {
  std::string name;                   // "loopback", "ucx"
  bool cross_process = false;         // peers may be other processes or hosts
  bool cuda_memory = false;           // RegisterMemory accepts MemoryKind::kCuda
  bool target_must_progress = false;  // the receiving side must call Progress() for puts to land
};

// Everything a peer needs in order to write into our registered region. Produced once by
// LocalEndpoint(), shipped over the control plane, consumed by the peer's Connect().
struct PeerEndpoint {
  std::vector<uint8_t> worker_address;  // opaque, transport-specific
  std::vector<uint8_t> rkey;            // opaque packed remote key of the registered region
  uint64_t base_address = 0;            // the region's base in the owner's address space
  uint64_t region_bytes = 0;            // writes past this are refused before they are posted
};

struct RegisteredRegion {
  void* base = nullptr;
  std::vector<uint8_t> rkey;  // as RegisterMemory returns it
};

using PeerId = uint64_t;      // chosen by the caller (e.g. the decode node's id)
using TransferId = uint64_t;  // unique per Transport object, never reused

class Transport {
 public:
  virtual ~Transport() = default;

  virtual const TransportCapabilities& capabilities() const = 0;

  // Registers the one region this transport sends from and receives into (the KV pool).
  // Returns the packed remote key. FailedPrecondition if a region is already registered.
  virtual Result<std::vector<uint8_t>> RegisterMemory(void* base, uint64_t bytes,
                                                      MemoryKind kind) = 0;

  // Alternative to RegisterMemory: the transport allocates `bytes` (zeroed), registers them
  // and owns them until it is destroyed. Host pools should prefer it: UCX then places the pool
  // in shared memory, so a peer on the same host writes it with a single memcpy instead of
  // emulated puts. FailedPrecondition if a region is already registered.
  virtual Result<RegisteredRegion> AllocateMemory(uint64_t bytes, MemoryKind kind) = 0;

  // This side's worker address (valid from construction).
  virtual const std::vector<uint8_t>& LocalAddress() const = 0;

  // Worker address + rkey + region of this side. REQUIRES: RegisterMemory succeeded.
  virtual Result<PeerEndpoint> LocalEndpoint() const = 0;

  // Creates the connection to `peer` and unpacks its rkey (once). AlreadyExists if connected.
  virtual Status Connect(PeerId peer, const PeerEndpoint& remote) = 0;

  // Closes the connection; transfers still in flight to it fail. NotFound if not connected.
  virtual Status Disconnect(PeerId peer) = 0;

  // Posts one PUT per descriptor from the local region into the peer's region. All descriptors
  // are bounds-checked before any is posted (all or nothing). An empty list completes at once.
  virtual Result<TransferId> PostPut(PeerId peer,
                                     std::span<const TransferDescriptor> descriptors) = 0;

  // Posts a flush: completes when all PUTs posted to `peer` before it are remotely visible.
  virtual Result<TransferId> PostFlush(PeerId peer) = 0;

  // Makes progress, then reports: true = complete, false = still in flight, error = the
  // transfer failed (peer failure, bad key, ...). NotFound for an unknown or released id.
  virtual Result<bool> Poll(TransferId id) = 0;

  // Forgets the transfer. Allowed while in flight: the transport keeps what the operation needs
  // until it completes, but the caller must not assume the bytes landed or did not land.
  virtual void Release(TransferId id) = 0;

  // Drives the transport (callbacks, emulated remote operations). Owner thread only.
  virtual void Progress() = 0;
};

// Polls `id` until it completes, fails, or `timeout` passes (DeadlineExceeded). Does not
// release it.
Status WaitForTransfer(Transport& transport, TransferId id, std::chrono::milliseconds timeout);

// Checks `descriptors` against a local region of `local_bytes` and a remote one of
// `remote_bytes` (OutOfRange naming the first bad descriptor, InvalidArgument for 0 bytes).
// Shared by the backends so that every transport refuses the same things.
Status CheckDescriptorBounds(std::span<const TransferDescriptor> descriptors,
                             uint64_t local_bytes, uint64_t remote_bytes);

}  // namespace tandem
