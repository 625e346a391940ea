#include "kv_transfer/loopback_transport.h"

#include <cstring>
#include <string>

namespace tandem {
namespace {

constexpr uint32_t kRkeyMagic = 0x4b52424cu;  // "LBRK"

void PutU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

uint64_t LoopbackFabric::Attach(LoopbackTransport* transport) {
  const uint64_t id = next_id_++;
  transports_[id] = transport;
  return id;
}
void LoopbackFabric::Detach(uint64_t id) { transports_.erase(id); }
LoopbackTransport* LoopbackFabric::Find(uint64_t id) const {
  auto it = transports_.find(id);
  return it == transports_.end() ? nullptr : it->second;
}

LoopbackTransport::LoopbackTransport(std::shared_ptr<LoopbackFabric> fabric)
    : fabric_(std::move(fabric)) {
  fabric_id_ = fabric_->Attach(this);
  capabilities_.name = "loopback";
  PutU64(address_, fabric_id_);
}

LoopbackTransport::~LoopbackTransport() { fabric_->Detach(fabric_id_); }

Result<std::vector<uint8_t>> LoopbackTransport::RegisterMemory(void* base, uint64_t bytes,
                                                               MemoryKind kind) {
  if (base_ != nullptr) return FailedPreconditionError("loopback: a region is already registered");
  if (base == nullptr || bytes == 0) return InvalidArgumentError("loopback: empty region");
  if (kind != MemoryKind::kHost) {
    return UnimplementedError("loopback: only host memory can be registered");
  }
  base_ = static_cast<uint8_t*>(base);
  bytes_ = bytes;
  std::vector<uint8_t> rkey;
  PutU64(rkey, kRkeyMagic);
  PutU64(rkey, reinterpret_cast<uint64_t>(base_));
  PutU64(rkey, bytes_);
  return rkey;
}

Result<RegisteredRegion> LoopbackTransport::AllocateMemory(uint64_t bytes, MemoryKind kind) {
  if (base_ != nullptr) return FailedPreconditionError("loopback: a region is already registered");
  if (bytes == 0) return InvalidArgumentError("loopback: empty region");
  if (kind != MemoryKind::kHost) {
    return UnimplementedError("loopback: only host memory can be allocated");
  }
  auto memory = std::make_unique<uint8_t[]>(bytes);  // value-initialised: zeroed
  ASSIGN_OR_RETURN(std::vector<uint8_t> rkey, RegisterMemory(memory.get(), bytes, kind));
  owned_ = std::move(memory);
  return RegisteredRegion{base_, std::move(rkey)};
}

Result<PeerEndpoint> LoopbackTransport::LocalEndpoint() const {
  if (base_ == nullptr) return FailedPreconditionError("loopback: no region registered");
  PeerEndpoint ep;
  ep.worker_address = address_;
  PutU64(ep.rkey, kRkeyMagic);
  PutU64(ep.rkey, reinterpret_cast<uint64_t>(base_));
  PutU64(ep.rkey, bytes_);
  ep.base_address = reinterpret_cast<uint64_t>(base_);
  ep.region_bytes = bytes_;
  return ep;
}

Status LoopbackTransport::Connect(PeerId peer, const PeerEndpoint& remote) {
  if (peers_.count(peer)) {
    return AlreadyExistsError("loopback: peer " + std::to_string(peer) + " already connected");
  }
  if (remote.worker_address.size() != 8) {
    return InvalidArgumentError("loopback: worker address must be 8 bytes, got " +
                                std::to_string(remote.worker_address.size()));
  }
  if (remote.rkey.size() != 24 || GetU64(remote.rkey.data()) != kRkeyMagic) {
    return InvalidArgumentError("loopback: malformed remote key");
  }
  const uint64_t fabric_id = GetU64(remote.worker_address.data());
  LoopbackTransport* target = fabric_->Find(fabric_id);
  if (target == nullptr) {
    return UnavailableError("loopback: no transport with address " + std::to_string(fabric_id));
  }
  // The key must describe the region the target actually registered, and the advertised
  // region must lie inside it: the same checks a real rkey unpack enforces.
  const uint64_t key_base = GetU64(remote.rkey.data() + 8);
  const uint64_t key_bytes = GetU64(remote.rkey.data() + 16);
  if (key_base != reinterpret_cast<uint64_t>(target->base_) || key_bytes != target->bytes_) {
    return InvalidArgumentError("loopback: remote key does not match the peer's registered region");
  }
  if (remote.base_address != key_base || remote.region_bytes > key_bytes) {
    return InvalidArgumentError("loopback: advertised region outside the remote key");
  }
  peers_[peer] = Peer{fabric_id, remote.base_address, remote.region_bytes};
  return Status::Ok();
}

Status LoopbackTransport::Disconnect(PeerId peer) {
  if (peers_.erase(peer) == 0) {
    return NotFoundError("loopback: peer " + std::to_string(peer) + " not connected");
  }
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->peer == peer) {
      auto st = transfers_.find(it->id);
      if (st != transfers_.end()) {
        st->second = {true, UnavailableError("loopback: peer " + std::to_string(peer) +
                                             " disconnected")};
      }
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return Status::Ok();
}

Result<TransferId> LoopbackTransport::Enqueue(PeerId peer,
                                              std::vector<TransferDescriptor> descriptors) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) {
    return NotFoundError("loopback: peer " + std::to_string(peer) + " not connected");
  }
  RETURN_IF_ERROR(CheckDescriptorBounds(descriptors, bytes_, it->second.remote_bytes));
  Op op;
  op.id = next_transfer_++;
  op.peer = peer;
  op.descriptors = std::move(descriptors);
  if (fail_next_ > 0) {
    --fail_next_;
    op.injected_error = fail_status_;
  }
  transfers_[op.id] = TransferState{};
  const TransferId id = op.id;
  queue_.push_back(std::move(op));
  return id;
}

Result<TransferId> LoopbackTransport::PostPut(PeerId peer,
                                              std::span<const TransferDescriptor> descriptors) {
  if (base_ == nullptr) return FailedPreconditionError("loopback: no region registered");
  return Enqueue(peer, {descriptors.begin(), descriptors.end()});
}

Result<TransferId> LoopbackTransport::PostFlush(PeerId peer) { return Enqueue(peer, {}); }

Status LoopbackTransport::Execute(const Op& op) {
  if (!op.injected_error.ok()) return op.injected_error;
  const Peer& peer = peers_.at(op.peer);
  LoopbackTransport* target = fabric_->Find(peer.fabric_id);
  if (target == nullptr || target->base_ == nullptr) {
    return UnavailableError("loopback: peer " + std::to_string(op.peer) + " is gone");
  }
  auto* dst = reinterpret_cast<uint8_t*>(peer.remote_base);
  for (const TransferDescriptor& d : op.descriptors) {
    std::memcpy(dst + d.dst_offset, base_ + d.src_offset, d.bytes);
  }
  return Status::Ok();
}

void LoopbackTransport::Progress() {
  while (!hold_ && !queue_.empty()) {
    Op op = std::move(queue_.front());
    queue_.pop_front();
    Status status = Execute(op);
    auto it = transfers_.find(op.id);
    if (it != transfers_.end()) it->second = {true, std::move(status)};
  }
}

Result<bool> LoopbackTransport::Poll(TransferId id) {
  Progress();
  auto it = transfers_.find(id);
  if (it == transfers_.end()) {
    return NotFoundError("loopback: unknown transfer " + std::to_string(id));
  }
  if (!it->second.done) return false;
  if (!it->second.status.ok()) return it->second.status;
  return true;
}

void LoopbackTransport::Release(TransferId id) {
  // A queued op whose record is gone still executes (the bytes may land), as on a real network.
  transfers_.erase(id);
}

void LoopbackTransport::FailNextTransfers(int count, Status error) {
  fail_next_ = count;
  fail_status_ = std::move(error);
}

}  // namespace tandem
