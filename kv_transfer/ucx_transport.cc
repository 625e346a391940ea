#include "kv_transfer/ucx_transport.h"

#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/logging.h"
#include "kv_transfer/ucx_handles.h"

namespace tandem {
namespace {

// One posted transfer: the number of UCX requests still outstanding and the first error.
struct UcxOp {
  int pending = 0;
  ucs_status_t status = UCS_OK;
};

void OnOpComplete(void* request, ucs_status_t status, void* user_data) {
  auto* op = static_cast<UcxOp*>(user_data);
  if (status != UCS_OK && op->status == UCS_OK) op->status = status;
  --op->pending;
  ucp_request_free(request);
}

struct UcxPeer {
  PeerId id = 0;
  ucp_ep_h ep = nullptr;
  ucx::UcxRkey rkey;
  uint64_t remote_base = 0;
  uint64_t remote_bytes = 0;
  ucs_status_t failure = UCS_OK;  // set by the endpoint error handler
  // UCP_ERR_HANDLING_MODE_PEER: failures are reported, and FORCE close is allowed (UCX
  // refuses FORCE on endpoints without it).
  bool detects_failure = true;
};

void OnEndpointError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* peer = static_cast<UcxPeer*>(arg);
  peer->failure = status;
  GetLogger("kv_transfer")->warn("ucx: peer {} failed: {}", peer->id, ucs_status_string(status));
}

}  // namespace

// Members are listed in creation order; ~Impl tears them down in the order UCX requires.
struct UcxTransport::Impl {
  UcxTransportOptions options;
  TransportCapabilities capabilities;
  ucx::UcxContext context;
  ucx::UcxWorker worker;
  std::vector<uint8_t> address;
  ucx::UcxMemory memory;
  std::vector<uint8_t> rkey_blob;
  uint8_t* base = nullptr;
  uint64_t bytes = 0;
  std::map<PeerId, std::unique_ptr<UcxPeer>> peers;  // unique_ptr: the error handler's arg
  std::unordered_map<TransferId, std::unique_ptr<UcxOp>> ops;
  std::vector<std::unique_ptr<UcxOp>> orphans;  // released while in flight
  TransferId next_id = 1;

  ~Impl();
  bool AnyInFlight() const;
  Result<UcxPeer*> UsablePeer(PeerId peer);
  TransferId Track(std::unique_ptr<UcxOp> op);
};

UcxTransport::Impl::~Impl() {
  auto log = GetLogger("kv_transfer");
  if (worker) {
    const auto deadline = std::chrono::steady_clock::now() + options.close_timeout;
    while (AnyInFlight() && std::chrono::steady_clock::now() < deadline) {
      ucp_worker_progress(worker.get());
    }
    const bool drained = !AnyInFlight();
    if (!drained) log->warn("ucx: destroying the transport with operations still in flight");
    // Forced close: our own operations are drained (or given up on), and a graceful close
    // would wait on the peer's progress, which a shutting-down node cannot count on. Force
    // also completes whatever is still outstanding, so no request outlives the worker.
    for (auto& [id, peer] : peers) {
      peer->rkey.reset();
      Status st = ucx::CloseEndpoint(worker.get(), peer->ep, peer->detects_failure,
                                     options.close_timeout);
      if (!st.ok()) log->warn("ucx: closing endpoint to peer {}: {}", id, st.ToString());
    }
    peers.clear();
  }
  memory.Reset();
  worker.reset();
  // Only now can no callback touch an op.
  ops.clear();
  orphans.clear();
  context.reset();
}

bool UcxTransport::Impl::AnyInFlight() const {
  for (const auto& [id, op] : ops) {
    if (op->pending > 0) return true;
  }
  for (const auto& op : orphans) {
    if (op->pending > 0) return true;
  }
  return false;
}

Result<UcxPeer*> UcxTransport::Impl::UsablePeer(PeerId peer) {
  if (base == nullptr) return FailedPreconditionError("ucx: no memory registered");
  auto it = peers.find(peer);
  if (it == peers.end()) {
    return NotFoundError("ucx: peer " + std::to_string(peer) + " not connected");
  }
  if (it->second->failure != UCS_OK) {
    return UnavailableError("ucx: peer " + std::to_string(peer) +
                            " failed: " + ucs_status_string(it->second->failure));
  }
  return it->second.get();
}

TransferId UcxTransport::Impl::Track(std::unique_ptr<UcxOp> op) {
  const TransferId id = next_id++;
  ops[id] = std::move(op);
  return id;
}

Result<std::unique_ptr<UcxTransport>> UcxTransport::Create(const UcxTransportOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;

  ucp_config_t* raw_config = nullptr;
  // nullptr env prefix and file: UCX reads UCX_* from the environment itself (UCX_TLS included).
  RETURN_IF_ERROR(ucx::FromUcs(ucp_config_read(nullptr, nullptr, &raw_config), "ucp_config_read"));
  ucx::UcxConfig config(raw_config);

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED |
                      UCP_PARAM_FIELD_NAME;
  // RMA only: the "KV ready" notification travels on the control plane, not on UCX.
  params.features = UCP_FEATURE_RMA;
  params.mt_workers_shared = 0;
  params.name = "tandem-kv";
  ucp_context_h context = nullptr;
  RETURN_IF_ERROR(ucx::FromUcs(ucp_init(&params, config.get(), &context), "ucp_init"));
  impl->context.reset(context);

  ucp_context_attr_t attr{};
  attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  RETURN_IF_ERROR(ucx::FromUcs(ucp_context_query(context, &attr), "ucp_context_query"));

  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucp_worker_h worker = nullptr;
  RETURN_IF_ERROR(
      ucx::FromUcs(ucp_worker_create(context, &worker_params, &worker), "ucp_worker_create"));
  impl->worker.reset(worker);

  ucp_address_t* address = nullptr;
  size_t address_length = 0;
  RETURN_IF_ERROR(ucx::FromUcs(ucp_worker_get_address(worker, &address, &address_length),
                               "ucp_worker_get_address"));
  const auto* address_bytes = reinterpret_cast<const uint8_t*>(address);
  impl->address.assign(address_bytes, address_bytes + address_length);
  ucp_worker_release_address(worker, address);

  impl->capabilities.name = "ucx";
  impl->capabilities.cross_process = true;
  impl->capabilities.cuda_memory = (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
  // Which lanes UCX picks is only known per endpoint; assume the conservative case.
  impl->capabilities.target_must_progress = true;
  return std::unique_ptr<UcxTransport>(new UcxTransport(std::move(impl)));
}

UcxTransport::UcxTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UcxTransport::~UcxTransport() = default;

const TransportCapabilities& UcxTransport::capabilities() const { return impl_->capabilities; }
const std::vector<uint8_t>& UcxTransport::LocalAddress() const { return impl_->address; }

namespace {

// ucp_mem_map + ucp_rkey_pack; `base` nullptr asks UCX to allocate (UCP_MEM_MAP_ALLOCATE).
Status MapAndPack(ucp_context_h context, void* base, uint64_t bytes, MemoryKind kind,
                  ucx::UcxMemory& memory, std::vector<uint8_t>& rkey_blob, void*& mapped) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                      UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  params.address = base;
  params.length = bytes;
  params.memory_type = kind == MemoryKind::kCuda ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
  params.flags = base == nullptr ? UCP_MEM_MAP_ALLOCATE : 0;
  ucp_mem_h memh = nullptr;
  RETURN_IF_ERROR(ucx::FromUcs(ucp_mem_map(context, &params, &memh), "ucp_mem_map"));
  ucx::UcxMemory owned(context, memh);

  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  RETURN_IF_ERROR(ucx::FromUcs(ucp_mem_query(memh, &attr), "ucp_mem_query"));
  if (attr.length < bytes) {
    return InternalError("ucp_mem_map returned " + std::to_string(attr.length) + " of " +
                         std::to_string(bytes) + " bytes");
  }

  void* packed = nullptr;
  size_t packed_size = 0;
  RETURN_IF_ERROR(
      ucx::FromUcs(ucp_rkey_pack(context, memh, &packed, &packed_size), "ucp_rkey_pack"));
  const auto* packed_bytes = static_cast<const uint8_t*>(packed);
  rkey_blob.assign(packed_bytes, packed_bytes + packed_size);
  ucp_rkey_buffer_release(packed);
  memory = std::move(owned);
  mapped = attr.address;
  return Status::Ok();
}

}  // namespace

Result<std::vector<uint8_t>> UcxTransport::RegisterMemory(void* base, uint64_t bytes,
                                                          MemoryKind kind) {
  Impl& m = *impl_;
  if (m.base != nullptr) return FailedPreconditionError("ucx: a region is already registered");
  if (base == nullptr || bytes == 0) return InvalidArgumentError("ucx: empty region");
  if (kind == MemoryKind::kCuda && !m.capabilities.cuda_memory) {
    return UnimplementedError("ucx: this UCX build has no CUDA memory support");
  }
  void* mapped = nullptr;
  RETURN_IF_ERROR(MapAndPack(m.context.get(), base, bytes, kind, m.memory, m.rkey_blob, mapped));
  m.base = static_cast<uint8_t*>(base);
  m.bytes = bytes;
  return m.rkey_blob;
}

Result<RegisteredRegion> UcxTransport::AllocateMemory(uint64_t bytes, MemoryKind kind) {
  Impl& m = *impl_;
  if (m.base != nullptr) return FailedPreconditionError("ucx: a region is already registered");
  if (bytes == 0) return InvalidArgumentError("ucx: empty region");
  if (kind != MemoryKind::kHost) {
    return UnimplementedError("ucx: only host memory can be allocated by the transport");
  }
  void* mapped = nullptr;
  RETURN_IF_ERROR(MapAndPack(m.context.get(), nullptr, bytes, kind, m.memory, m.rkey_blob, mapped));
  m.base = static_cast<uint8_t*>(mapped);
  m.bytes = bytes;
  std::memset(m.base, 0, bytes);  // same contract as the loopback: zeroed
  return RegisteredRegion{m.base, m.rkey_blob};
}

Result<PeerEndpoint> UcxTransport::LocalEndpoint() const {
  const Impl& m = *impl_;
  if (m.base == nullptr) return FailedPreconditionError("ucx: no memory registered");
  PeerEndpoint ep;
  ep.worker_address = m.address;
  ep.rkey = m.rkey_blob;
  ep.base_address = reinterpret_cast<uint64_t>(m.base);
  ep.region_bytes = m.bytes;
  return ep;
}

Status UcxTransport::Connect(PeerId peer, const PeerEndpoint& remote) {
  Impl& m = *impl_;
  if (m.peers.count(peer)) {
    return AlreadyExistsError("ucx: peer " + std::to_string(peer) + " already connected");
  }
  if (remote.worker_address.empty()) return InvalidArgumentError("ucx: empty worker address");
  if (remote.rkey.empty()) return InvalidArgumentError("ucx: empty remote key");
  if (remote.region_bytes == 0) return InvalidArgumentError("ucx: empty remote region");

  auto state = std::make_unique<UcxPeer>();
  state->id = peer;
  state->remote_base = remote.base_address;
  state->remote_bytes = remote.region_bytes;

  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(remote.worker_address.data());
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = OnEndpointError;
  params.err_handler.arg = state.get();
  ucs_status_t created = ucp_ep_create(m.worker.get(), &params, &state->ep);
  if (created == UCS_ERR_UNREACHABLE) {
    // Some wires cannot detect a dead peer (UCX 1.13's shared-memory transports have no peer
    // failure handler, so UCX finds no usable lane in PEER mode). Connect without it: a dead
    // peer then surfaces as the session's timeout instead of an immediate error.
    GetLogger("kv_transfer")
        ->info("ucx: peer {} unreachable with peer-failure detection; connecting without it",
               peer);
    params.field_mask &= ~static_cast<uint64_t>(UCP_EP_PARAM_FIELD_ERR_HANDLER);
    params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    state->detects_failure = false;
    created = ucp_ep_create(m.worker.get(), &params, &state->ep);
  }
  RETURN_IF_ERROR(ucx::FromUcs(created, "ucp_ep_create"));

  ucp_rkey_h rkey = nullptr;
  ucs_status_t unpacked = ucp_ep_rkey_unpack(state->ep, remote.rkey.data(), &rkey);
  if (unpacked != UCS_OK) {
    ucx::CloseEndpoint(m.worker.get(), state->ep, state->detects_failure, m.options.close_timeout)
        .IgnoreError();  // the unpack error is the one worth reporting
    return ucx::FromUcs(unpacked, "ucp_ep_rkey_unpack");
  }
  state->rkey.reset(rkey);
  GetLogger("kv_transfer")->debug("ucx: connected to peer {} ({} remote bytes)", peer,
                                  remote.region_bytes);
  m.peers[peer] = std::move(state);
  return Status::Ok();
}

Status UcxTransport::Disconnect(PeerId peer) {
  Impl& m = *impl_;
  auto it = m.peers.find(peer);
  if (it == m.peers.end()) {
    return NotFoundError("ucx: peer " + std::to_string(peer) + " not connected");
  }
  std::unique_ptr<UcxPeer> state = std::move(it->second);
  m.peers.erase(it);
  state->rkey.reset();
  return ucx::CloseEndpoint(m.worker.get(), state->ep,
                            state->detects_failure && state->failure != UCS_OK,
                            m.options.close_timeout)
      .WithContext("disconnecting peer " + std::to_string(peer));
}

Result<TransferId> UcxTransport::PostPut(PeerId peer,
                                         std::span<const TransferDescriptor> descriptors) {
  Impl& m = *impl_;
  ASSIGN_OR_RETURN(UcxPeer * p, m.UsablePeer(peer));
  RETURN_IF_ERROR(CheckDescriptorBounds(descriptors, m.bytes, p->remote_bytes));
  auto op = std::make_unique<UcxOp>();
  for (const TransferDescriptor& d : descriptors) {
    ucp_request_param_t param{};
    param.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_MEMH;
    param.cb.send = OnOpComplete;
    param.user_data = op.get();
    param.memh = m.memory.get();
    ucs_status_ptr_t request = ucp_put_nbx(p->ep, m.base + d.src_offset, d.bytes,
                                           p->remote_base + d.dst_offset, p->rkey.get(), &param);
    if (UCS_PTR_IS_ERR(request)) {
      // Puts already posted keep running; park the op until they finish.
      const ucs_status_t error = UCS_PTR_STATUS(request);
      m.orphans.push_back(std::move(op));
      return ucx::FromUcs(error, "ucp_put_nbx to peer " + std::to_string(peer));
    }
    if (request != nullptr) ++op->pending;
  }
  return m.Track(std::move(op));
}

Result<TransferId> UcxTransport::PostFlush(PeerId peer) {
  Impl& m = *impl_;
  ASSIGN_OR_RETURN(UcxPeer * p, m.UsablePeer(peer));
  auto op = std::make_unique<UcxOp>();
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = OnOpComplete;
  param.user_data = op.get();
  ucs_status_ptr_t request = ucp_ep_flush_nbx(p->ep, &param);
  if (UCS_PTR_IS_ERR(request)) {
    return ucx::FromUcs(UCS_PTR_STATUS(request), "ucp_ep_flush_nbx to peer " +
                                                     std::to_string(peer));
  }
  if (request != nullptr) ++op->pending;
  return m.Track(std::move(op));
}

void UcxTransport::Progress() {
  Impl& m = *impl_;
  // Drain what is ready now, but bounded so one call cannot spin forever under load.
  for (int i = 0; i < 64 && ucp_worker_progress(m.worker.get()) != 0; ++i) {
  }
  std::erase_if(m.orphans, [](const std::unique_ptr<UcxOp>& op) { return op->pending == 0; });
}

Result<bool> UcxTransport::Poll(TransferId id) {
  Progress();
  auto it = impl_->ops.find(id);
  if (it == impl_->ops.end()) {
    return NotFoundError("ucx: unknown transfer " + std::to_string(id));
  }
  const UcxOp& op = *it->second;
  if (op.pending > 0) return false;
  if (op.status != UCS_OK) {
    return ucx::FromUcs(op.status, "ucx transfer " + std::to_string(id));
  }
  return true;
}

void UcxTransport::Release(TransferId id) {
  Impl& m = *impl_;
  auto it = m.ops.find(id);
  if (it == m.ops.end()) return;
  if (it->second->pending > 0) m.orphans.push_back(std::move(it->second));
  m.ops.erase(it);
}

}  // namespace tandem
