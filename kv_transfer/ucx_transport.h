// The UCX implementation of Transport: one ucp_context and one ucp_worker per node, the KV pool
// registered once with ucp_mem_map, its rkey packed once; per peer, one endpoint created from
// the peer's worker address and the peer's rkey unpacked once. A PUT transfer is one
// ucp_put_nbx per descriptor (the layout has already merged contiguous runs); a FLUSH is
// ucp_ep_flush_nbx, which completes only when the puts before it are remotely visible.
//
// Which wires UCX uses is UCX's choice, steered by the environment exactly as for any UCX
// program (UCX_TLS=tcp,self, UCX_TLS=sm,self, ...): the configuration is read with
// ucp_config_read and never overridden here.
//
// Threads: UCS_THREAD_MODE_SINGLE. The worker is progressed from exactly one thread, the
// owner of this object (the node's engine loop), through Progress()/Poll(); no other thread
// may call any method. The receiving node must call Progress() in its loop as well
// (capabilities().target_must_progress): with UCX 1.13, shared-memory puts into application
// memory may be emulated with active messages that only the target's progress completes.
//
// Failures: endpoints use UCP_ERR_HANDLING_MODE_PEER, so a dead peer fails the transfers in
// flight (Poll returns Unavailable) instead of hanging; every internal wait is bounded.
#pragma once

#include <chrono>
#include <memory>

#include "kv_transfer/transport.h"

namespace tandem {

struct UcxTransportOptions {
  // Bound on each wait the transport does on its own: closing an endpoint, and draining
  // operations still in flight when it is destroyed.
  std::chrono::milliseconds close_timeout{2000};
};

class UcxTransport final : public Transport {
 public:
  static Result<std::unique_ptr<UcxTransport>> Create(const UcxTransportOptions& options = {});
  ~UcxTransport() override;
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  const TransportCapabilities& capabilities() const override;
  Result<std::vector<uint8_t>> RegisterMemory(void* base, uint64_t bytes,
                                              MemoryKind kind) override;
  Result<RegisteredRegion> AllocateMemory(uint64_t bytes, MemoryKind kind) override;
  const std::vector<uint8_t>& LocalAddress() const override;
  Result<PeerEndpoint> LocalEndpoint() const override;
  Status Connect(PeerId peer, const PeerEndpoint& remote) override;
  Status Disconnect(PeerId peer) override;
  Result<TransferId> PostPut(PeerId peer, std::span<const TransferDescriptor> descriptors) override;
  Result<TransferId> PostFlush(PeerId peer) override;
  Result<bool> Poll(TransferId id) override;
  void Release(TransferId id) override;
  void Progress() override;

 private:
  struct Impl;
  explicit UcxTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
