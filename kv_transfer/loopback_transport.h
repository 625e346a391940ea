// A Transport between objects in the same process: PUTs are memcpys from one registered region
// into another. It exists so that the session and the nodes can be unit-tested without a
// network, and it carries fault injection (LevelDB-style) for the failure paths.
//
// Asynchrony is modelled honestly: a posted PUT is queued and copied by the INITIATOR's
// Progress() (Poll calls it), so callers cannot accidentally rely on a post being synchronous.
// Completion order per peer is FIFO, so a flush completes once the puts before it have.
//
// Threads: all transports of one fabric must be driven from one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "kv_transfer/transport.h"

namespace tandem {

class LoopbackTransport;

// The in-process "network": resolves worker addresses to transports. Share one between the
// transports that should see each other.
class LoopbackFabric {
 public:
  uint64_t Attach(LoopbackTransport* transport);
  void Detach(uint64_t id);
  LoopbackTransport* Find(uint64_t id) const;  // nullptr if detached

 private:
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, LoopbackTransport*> transports_;
};

class LoopbackTransport : public Transport {
 public:
  explicit LoopbackTransport(std::shared_ptr<LoopbackFabric> fabric);
  ~LoopbackTransport() override;
  LoopbackTransport(const LoopbackTransport&) = delete;
  LoopbackTransport& operator=(const LoopbackTransport&) = delete;

  const TransportCapabilities& capabilities() const override { return capabilities_; }
  Result<std::vector<uint8_t>> RegisterMemory(void* base, uint64_t bytes,
                                              MemoryKind kind) override;
  Result<RegisteredRegion> AllocateMemory(uint64_t bytes, MemoryKind kind) override;
  const std::vector<uint8_t>& LocalAddress() const override { return address_; }
  Result<PeerEndpoint> LocalEndpoint() const override;
  Status Connect(PeerId peer, const PeerEndpoint& remote) override;
  Status Disconnect(PeerId peer) override;
  Result<TransferId> PostPut(PeerId peer, std::span<const TransferDescriptor> descriptors) override;
  Result<TransferId> PostFlush(PeerId peer) override;
  Result<bool> Poll(TransferId id) override;
  void Release(TransferId id) override;
  void Progress() override;

  // --- fault injection (tests only) ---
  // The next `count` transfers posted complete with `error` and copy nothing.
  void FailNextTransfers(int count, Status error);
  // While held, queued operations do not progress (a stalled network; drives timeouts).
  void HoldCompletions(bool hold) { hold_ = hold; }
  // Operations queued and not yet complete (all peers).
  size_t in_flight() const { return queue_.size(); }

 private:
  struct Peer {
    uint64_t fabric_id = 0;
    uint64_t remote_base = 0;
    uint64_t remote_bytes = 0;
  };
  struct Op {
    TransferId id = 0;
    PeerId peer = 0;
    std::vector<TransferDescriptor> descriptors;  // empty for a flush
    Status injected_error;
  };
  struct TransferState {
    bool done = false;
    Status status;
  };

  Result<TransferId> Enqueue(PeerId peer, std::vector<TransferDescriptor> descriptors);
  Status Execute(const Op& op);

  std::shared_ptr<LoopbackFabric> fabric_;
  uint64_t fabric_id_ = 0;
  TransportCapabilities capabilities_;
  std::vector<uint8_t> address_;
  std::unique_ptr<uint8_t[]> owned_;  // set by AllocateMemory
  uint8_t* base_ = nullptr;
  uint64_t bytes_ = 0;
  std::map<PeerId, Peer> peers_;
  std::deque<Op> queue_;
  std::unordered_map<TransferId, TransferState> transfers_;
  TransferId next_transfer_ = 1;
  int fail_next_ = 0;
  Status fail_status_;
  bool hold_ = false;
};

}  // namespace tandem
