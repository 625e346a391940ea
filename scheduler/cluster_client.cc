#include "scheduler/cluster_client.h"

#include <charconv>

#include "common/logging.h"
#include "common/rpc/wire_status.h"
#include "proto/wire_model.h"

namespace tandem {

namespace {

std::vector<NodeSpec> NodeSpecs(const ClusterSpec& cluster) {
  std::vector<NodeSpec> specs;
  for (const NodeAddress& a : cluster.prefill) specs.push_back({a.id, NodeRole::kPrefill});
  for (const NodeAddress& a : cluster.decode) specs.push_back({a.id, NodeRole::kDecode});
  return specs;
}

RouterCoreOptions CoreOptions(const ClusterClientOptions& o) {
  RouterCoreOptions c;
  c.max_decode_attempts = o.max_decode_attempts;
  c.first_token_timeout_us = o.first_token_timeout.count() * 1000;
  c.inter_token_timeout_us = o.inter_token_timeout.count() * 1000;
  c.max_queued = o.max_queued;
  c.limits = o.limits;
  c.kv_aware_routing = o.kv_aware_routing;
  return c;
}

}  // namespace

int64_t ClusterClient::ParseWireId(const std::string& wire_id) {
  constexpr std::string_view kPrefix = "req-";
  if (wire_id.size() <= kPrefix.size() || wire_id.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  int64_t id = -1;
  const char* b = wire_id.data() + kPrefix.size();
  const char* e = wire_id.data() + wire_id.size();
  auto [p, ec] = std::from_chars(b, e, id);
  return ec == std::errc() && p == e ? id : -1;
}

ClusterClient::ClusterClient(ClusterClientOptions options, std::unique_ptr<PlacementPolicy> policy)
    : options_(std::move(options)) {
  for (const NodeAddress& a : options_.cluster.prefill) addresses_.push_back(a);
  for (const NodeAddress& a : options_.cluster.decode) addresses_.push_back(a);
  auto core = std::make_unique<RouterCore>(NodeSpecs(options_.cluster), std::move(policy), CoreOptions(options_));
  shell_ = std::make_unique<RouterShell>(std::move(core), static_cast<NodeLink&>(*this), SteadyClock::Instance(),
                                         GetLogger("router"), options_.on_finished);
}

Result<std::unique_ptr<ClusterClient>> ClusterClient::Create(ClusterClientOptions options,
                                                             std::unique_ptr<PlacementPolicy> policy) {
  RETURN_IF_ERROR(options.cluster.Validate());
  RETURN_IF_ERROR(options.connection.Validate());
  RETURN_IF_ERROR(options.backoff.Validate());
  if (!policy) return InvalidArgumentError("ClusterClient needs a placement policy");
  if (options.max_decode_attempts < 1) return InvalidArgumentError("max_decode_attempts must be >= 1");
  if (options.max_queued < 0) return InvalidArgumentError("max_queued must be >= 0");
  std::unique_ptr<ClusterClient> client(new ClusterClient(std::move(options), std::move(policy)));
  RETURN_IF_ERROR(client->StartNodes());
  return client;
}

Status ClusterClient::StartNodes() {
  for (size_t i = 0; i < addresses_.size(); ++i) {
    const NodeAddress& a = addresses_[i];
    const NodeIndex node = static_cast<NodeIndex>(i);
    const bool prefill = i < options_.cluster.prefill.size();
    rpc::RpcClientOptions o;
    o.host = a.host;
    o.port = a.port;
    o.hello.set_role(proto::ROLE_ROUTER);
    o.hello.set_node_id(options_.router_id);
    o.hello.set_model_name(options_.model_name);
    o.connection = options_.connection;
    o.backoff = options_.backoff;
    const proto::Role want = prefill ? proto::ROLE_PREFILL : proto::ROLE_DECODE;
    const std::string want_id = a.id;
    o.validator = [want, want_id](const proto::Hello& peer) -> Status {
      if (peer.role() != want) {
        return FailedPreconditionError("node at this address has role " + proto::Role_Name(peer.role()) +
                                       ", expected " + proto::Role_Name(want));
      }
      if (peer.node_id() != want_id) {
        return FailedPreconditionError("node at this address is '" + peer.node_id() + "', expected '" + want_id + "'");
      }
      if (want == proto::ROLE_DECODE && peer.block_size_tokens() == 0) {
        return FailedPreconditionError("decode node '" + want_id + "' reports a KV block size of 0");
      }
      return Status::Ok();
    };
    rpc::RpcClientCallbacks cb;
    cb.on_ready = [this, node](const proto::Hello& hello) {
      GetLogger("router")->info("node {} connected (role {}, {} KV blocks of {} tokens)", addresses_[node].ToString(),
                                proto::Role_Name(hello.role()), hello.num_kv_blocks(), hello.block_size_tokens());
      shell_->Update([&](RouterCore& core, int64_t now, RouterActions* out) {
        core.OnNodeConnected(node, hello.block_size_tokens(), now, out, hello.kv_reserves_output_blocks());
      });
    };
    cb.on_message = [this, node](proto::Envelope&& env) { OnNodeMessage(node, std::move(env)); };
    cb.on_disconnected = [this, node](const Status& st) { OnNodeClosed(node, st); };
    rpcs_.push_back(std::make_unique<rpc::RpcClient>(std::move(o), std::move(cb)));
  }
  for (size_t i = 0; i < rpcs_.size(); ++i) {
    const Status st = rpcs_[i]->Start();
    if (!st.ok()) return Status(st.code(), "node " + addresses_[i].ToString() + ": " + st.message());
  }
  return Status::Ok();
}

ClusterClient::~ClusterClient() { Stop(); }

void ClusterClient::Stop() {
  // The Aborts of what is in flight are queued on the connections first; closing them drains
  // the queues (bounded), so no block leaks on a node that is alive.
  shell_->Stop([this] {
    for (auto& rpc : rpcs_) rpc->Stop();  // no io callbacks after this
  });
}

Status ClusterClient::Submit(ServingRequest request, EventCallback callback) {
  return shell_->Submit(std::move(request), std::move(callback));
}

void ClusterClient::Abort(int64_t request_id, FinishReason as) { shell_->Abort(request_id, as); }

bool ClusterClient::Ready() const { return shell_->Ready(); }

InferenceClient::Health ClusterClient::GetHealth() const { return shell_->GetHealth(); }

Status ClusterClient::WaitReady(std::chrono::milliseconds timeout) const { return shell_->WaitReady(timeout); }

LoadInfo ClusterClient::Load() const {
  return shell_->Read([](const RouterCore& core) { return core.Load(); });
}

int64_t ClusterClient::MaxSequenceTokens() const {
  return shell_->Read([](const RouterCore& core) { return core.MaxSequenceTokens(); });
}

std::vector<NodeView> ClusterClient::Nodes() const {
  return shell_->Read([](const RouterCore& core) { return core.nodes(); });
}

// ---------------------------------------------------------------- NodeLink

void ClusterClient::SendPrefill(const tandem::SendPrefill& order) {
  const ServingRequest& r = *order.request;
  proto::Envelope env;
  proto::PrefillRequest* pr = env.mutable_prefill_request();
  pr->set_request_id(WireId(r.id));
  pr->mutable_prompt_token_ids()->Add(r.prompt.begin(), r.prompt.end());
  *pr->mutable_sampling() = SamplingToProto(r.params);
  pr->set_decode_node_id(addresses_[order.decode].id);
  pr->set_arrival_unix_us(SteadyToUnixMicros(r.arrival_us));
  pr->set_deadline_unix_us(SteadyToUnixMicros(order.deadline_us));
  pr->set_ttft_target_ms(r.slo.ttft_ms);
  pr->set_tpot_target_ms(r.slo.tpot_ms);
  pr->set_slo_priority(r.slo.priority);
  pr->set_cache_salt(r.cache_salt);
  const Status sent = rpcs_[order.prefill]->Send(std::move(env));
  if (sent.ok()) return;
  // The connection went away between the node view and the send: its loss is on its way as a
  // disconnect, which fails the request through the core.
  GetLogger("router")->warn("{}: cannot reach prefill node {}: {}", WireId(r.id), addresses_[order.prefill].id,
                            sent.ToString());
}

void ClusterClient::SendAbort(const tandem::SendAbort& order) {
  proto::Envelope env;
  env.mutable_abort()->set_request_id(WireId(order.request_id));
  env.mutable_abort()->set_reason(order.reason);
  rpcs_[order.node]->Send(std::move(env)).IgnoreError();  // a node that is down has nothing to free
}

void ClusterClient::SendClusterView(const tandem::SendClusterView& order) {
  proto::Envelope env;
  proto::ClusterView* view = env.mutable_cluster_view();
  for (const NodeAddress& a : options_.cluster.decode) {
    proto::ClusterView::NodeAddress* n = view->add_decode_nodes();
    n->set_node_id(a.id);
    n->set_host(a.host);
    n->set_port(a.port);
  }
  rpcs_[order.node]->Send(std::move(env)).IgnoreError();  // resent after every reconnection
}

// ---------------------------------------------------------------- io threads

void ClusterClient::OnNodeClosed(NodeIndex node, const Status& status) {
  GetLogger("router")->warn("node {} is down: {}", addresses_[node].ToString(), status.ToString());
  shell_->Update(
      [&](RouterCore& core, int64_t now, RouterActions* out) { core.OnNodeDisconnected(node, status, now, out); });
}

void ClusterClient::OnNodeMessage(NodeIndex node, proto::Envelope&& env) {
  const auto id_of = [](const std::string& wire) { return ParseWireId(wire); };
  switch (env.payload_case()) {
    case proto::Envelope::kLoadReport: {
      const proto::LoadReport& m = env.load_report();
      NodeLoadReport r;
      r.queued_requests = m.queued_requests();
      r.queued_tokens = m.queued_tokens();
      r.running_requests = m.running_requests();
      r.free_blocks = m.free_blocks();
      r.total_blocks = m.total_blocks();
      r.busy_fraction = m.busy_fraction();
      r.latency_factor = m.latency_factor();
      r.connected_decode_nodes.assign(m.connected_decode_nodes().begin(), m.connected_decode_nodes().end());
      r.cache_block_size = m.cache_block_size();
      r.cache_snapshot = m.cache_snapshot();
      r.cache_stored = ParseBlockHashes(m.cache_stored());
      r.cache_removed = ParseBlockHashes(m.cache_removed());
      shell_->Update(
          [&](RouterCore& core, int64_t now, RouterActions* out) { core.OnLoadReport(node, std::move(r), now, out); });
      return;
    }
    case proto::Envelope::kFirstToken: {
      const proto::FirstToken& m = env.first_token();
      FirstTokenReport r;
      r.token = m.token_id();
      r.finished = m.finished();
      r.finish_reason = r.finished ? FinishReasonFromProto(m.finish_reason()) : FinishReason::kNone;
      r.prefill_start_us = UnixToSteadyMicros(m.prefill_start_unix_us());
      r.prefill_end_us = UnixToSteadyMicros(m.first_token_unix_us());
      r.cached_tokens = static_cast<int32_t>(m.cached_tokens());
      const int64_t id = id_of(m.request_id());
      shell_->Update(
          [&](RouterCore& core, int64_t now, RouterActions* out) { core.OnFirstToken(node, id, r, now, out); });
      return;
    }
    case proto::Envelope::kTokenChunk: {
      const proto::TokenChunk& m = env.token_chunk();
      TokensReport r;
      r.tokens.assign(m.token_ids().begin(), m.token_ids().end());
      r.finished = m.finished();
      r.finish_reason = r.finished ? FinishReasonFromProto(m.finish_reason()) : FinishReason::kNone;
      r.decode_admitted_us = UnixToSteadyMicros(m.decode_admitted_unix_us());
      r.preemptions = static_cast<int32_t>(m.preemptions());
      if (m.kv_bytes() > 0) {
        r.transfer = {static_cast<int64_t>(m.kv_bytes()), UnixToSteadyMicros(m.transfer_start_unix_us()),
                      UnixToSteadyMicros(m.transfer_end_unix_us())};
      }
      const int64_t id = id_of(m.request_id());
      shell_->Update([&](RouterCore& core, int64_t now, RouterActions* out) { core.OnTokens(node, id, r, now, out); });
      return;
    }
    case proto::Envelope::kKvReady: {
      const proto::KvReady& m = env.kv_ready();
      TransferReport r;
      r.bytes = static_cast<int64_t>(m.bytes());
      r.start_us = UnixToSteadyMicros(m.transfer_start_unix_us());
      r.end_us = UnixToSteadyMicros(m.completed_unix_us());
      const int64_t id = id_of(m.request_id());
      shell_->Update([&](RouterCore& core, int64_t, RouterActions*) { core.OnKvReady(node, id, r); });
      return;
    }
    case proto::Envelope::kKvReservation: {  // P relays D's refusal
      const proto::KvReservation& m = env.kv_reservation();
      if (m.ok()) return;
      const int64_t id = id_of(m.request_id());
      GetLogger("router")->info("{}: decode node {} refused the reservation: {}", m.request_id(), m.decode_node_id(),
                                m.reason());
      shell_->Update([&](RouterCore& core, int64_t now, RouterActions* out) {
        core.OnReservationRefused(node, id, m.decode_node_id(), m.reason(), now, out);
      });
      return;
    }
    case proto::Envelope::kError:
    case proto::Envelope::kAbort: {
      const bool error = env.has_error();
      const std::string& wire = error ? env.error().request_id() : env.abort().request_id();
      const Status status =
          error ? rpc::StatusFromError(env.error())
                : AbortedError("node " + addresses_[node].id + " aborted the request: " + env.abort().reason());
      const int64_t id = id_of(wire);
      if (id < 0) {
        GetLogger("router")->warn("node {}: {} for {}: {}", addresses_[node].id, error ? "error" : "abort",
                                  wire.empty() ? "-" : wire, status.ToString());
        return;
      }
      shell_->Update(
          [&](RouterCore& core, int64_t now, RouterActions* out) { core.OnNodeError(node, id, status, now, out); });
      return;
    }
    default:
      GetLogger("router")->debug("node {}: ignoring envelope with payload {}", addresses_[node].id,
                                 static_cast<int>(env.payload_case()));
  }
}

}  // namespace tandem
