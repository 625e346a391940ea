#include "prefill_node/prefill_service.h"

#include <algorithm>
#include <charconv>

#include "common/clock.h"
#include "common/logging.h"
#include "common/rpc/cluster_auth.h"
#include "common/rpc/tls.h"
#include "common/rpc/wire_status.h"

namespace tandem {

Result<DecodeNodeAddress> ParseDecodeNodeAddress(const std::string& text) {
  const size_t eq = text.find('=');
  const size_t colon = text.rfind(':');
  if (eq == std::string::npos || eq == 0 || colon == std::string::npos || colon < eq + 2 || colon + 1 == text.size()) {
    return InvalidArgumentError("--decode-node '" + text + "': expected ID=HOST:PORT");
  }
  DecodeNodeAddress a;
  a.node_id = text.substr(0, eq);
  a.host = text.substr(eq + 1, colon - eq - 1);
  unsigned port = 0;
  const char* b = text.data() + colon + 1;
  const char* e = text.data() + text.size();
  auto [p, ec] = std::from_chars(b, e, port);
  if (ec != std::errc() || p != e || port == 0 || port > 65535) {
    return InvalidArgumentError("--decode-node '" + text + "': bad port");
  }
  a.port = static_cast<uint16_t>(port);
  return a;
}

PrefillService::PrefillService(PrefillServiceOptions options) : options_(std::move(options)) {}

PrefillService::~PrefillService() { Stop(); }

Status PrefillService::Start() {
  if (!options_.runtime.cluster_secret_file.empty()) {
    ASSIGN_OR_RETURN(cluster_secret_, rpc::LoadClusterSecret(options_.runtime.cluster_secret_file));
  }
  ASSIGN_OR_RETURN(tls_, rpc::LoadTlsContext(options_.runtime.tls));
  ASSIGN_OR_RETURN(rt_, LoadNodeRuntime(options_.runtime));
  RETURN_IF_ERROR(rt_->StartMetrics(options_.runtime, "prefill", options_.node_id, options_.host));
  engine_ = std::make_unique<PrefillEngine>(*rt_->transformer, *rt_->cache, *rt_->transport, options_.engine);
  // The routers' prefix index comes from these (each load report drains them).
  rt_->cache->pool().RecordCacheEvents(rt_->cache->pool().prefix_caching());
  engine_->SetEarlyDispatch([this](std::vector<PrefillEvent>& events) { Dispatch(events); });

  hello_.set_role(proto::ROLE_PREFILL);
  hello_.set_node_id(options_.node_id);
  hello_.set_kv_layout_hash(rt_->layout.compatibility_hash());
  const auto& addr = rt_->transport->LocalAddress();
  hello_.set_ucx_worker_address(std::string(addr.begin(), addr.end()));
  hello_.set_num_kv_blocks(static_cast<uint32_t>(rt_->cache->num_blocks()));
  hello_.set_block_size_tokens(static_cast<uint32_t>(rt_->cache->block_size()));

  rpc::RpcServerOptions so;
  so.host = options_.host;
  so.port = options_.port;
  so.hello = hello_;
  so.connection.cluster_secret = cluster_secret_;
  so.connection.tls = tls_;
  rpc::RpcServerCallbacks sc;
  sc.on_message = [this](const rpc::Connection::Ptr& conn, proto::Envelope&& env) {
    auto shared = std::make_shared<proto::Envelope>(std::move(env));
    Post([this, conn, shared] { OnRouterMessage(conn, std::move(*shared)); });
  };
  sc.on_peer_closed = [this](const rpc::Connection::Ptr& conn, const Status&) {
    Post([this, conn] { OnRouterClosed(conn); });
  };
  server_ = std::make_unique<rpc::RpcServer>(so, sc);
  RETURN_IF_ERROR(server_->Start());
  for (const DecodeNodeAddress& d : options_.decode_nodes) {
    if (FindDecode(d.node_id) != nullptr) return InvalidArgumentError("decode node " + d.node_id + " is given twice");
    RETURN_IF_ERROR(AddDecodeNode(d));
  }
  reporter_ = std::make_unique<LoadReporter>(options_.load_report_interval);
  loop_.Start([this] { return Iterate(); });
  return Status::Ok();
}

void PrefillService::Stop() {
  // The engine thread goes first: it adds decode clients (ClusterView), so they are stopped
  // after it can no longer do so.
  if (server_) server_->Stop();
  loop_.Stop();
  for (auto& d : decodes_) d->client->Stop();
  // The engine (and its sessions) go before the runtime's transport and pool.
  engine_.reset();
}

Status PrefillService::AddDecodeNode(const DecodeNodeAddress& d) {
  const size_t index = decodes_.size();
  const uint64_t hash = rt_->layout.compatibility_hash();
  rpc::RpcClientOptions co;
  co.host = d.host;
  co.port = d.port;
  co.hello = hello_;
  co.connection.cluster_secret = cluster_secret_;
  co.connection.tls = tls_;
  co.validator = [hash, d](const proto::Hello& peer) {
    if (peer.role() != proto::ROLE_DECODE) return InvalidArgumentError(d.node_id + " is not a decode node");
    if (peer.node_id() != d.node_id) {
      return InvalidArgumentError("expected decode node " + d.node_id + ", found " + peer.node_id());
    }
    if (peer.kv_layout_hash() != hash) {
      return FailedPreconditionError("decode node " + d.node_id + " KV layout hash " +
                                     std::to_string(peer.kv_layout_hash()) + " differs from ours " +
                                     std::to_string(hash) + " (same model, dtype and block size needed)");
    }
    return Status::Ok();
  };
  rpc::RpcClientCallbacks cc;
  cc.on_ready = [this, index](const proto::Hello& peer) { Post([this, index, peer] { OnDecodeReady(index, peer); }); };
  cc.on_disconnected = [this, index](const Status& s) { Post([this, index, s] { OnDecodeLost(index, s); }); };
  const std::string node_id = d.node_id;
  cc.on_message = [this, node_id](proto::Envelope&& env) {
    if (!env.has_kv_reservation()) return;  // nothing else from a decode node needs us
    const proto::KvReservation& m = env.kv_reservation();
    // Straight into the engine's mailbox, so a forward pass that is running picks it up between
    // layers; the posted closure wakes an idle loop to apply it.
    engine_->PostReservation(node_id, m.request_id(), m.ok(),
                             std::vector<int>(m.block_ids().begin(), m.block_ids().end()), m.reason(),
                             static_cast<int32_t>(m.cached_blocks()));
    Post([this] {
      std::vector<PrefillEvent> events;
      engine_->DrainReservations(&events);
      Dispatch(events);
    });
  };
  auto link = std::make_unique<DecodeLink>();
  link->address = d;
  link->client = std::make_unique<rpc::RpcClient>(co, cc);
  decode_index_[d.node_id] = index;
  decodes_.push_back(std::move(link));
  const Status started = decodes_.back()->client->Start();
  if (!started.ok()) return started.WithContext("decode node " + d.node_id);
  GetLogger("prefill")->info("connecting to decode node {} at {}:{}", d.node_id, d.host, d.port);
  return Status::Ok();
}

PrefillService::DecodeLink* PrefillService::FindDecode(const std::string& node_id) {
  auto it = decode_index_.find(node_id);
  return it == decode_index_.end() ? nullptr : decodes_[it->second].get();
}

void PrefillService::OnClusterView(const proto::ClusterView& view) {
  for (const auto& n : view.decode_nodes()) {
    if (FindDecode(n.node_id()) != nullptr) continue;  // known (a --decode-node flag wins)
    if (n.port() == 0 || n.port() > 65535) continue;
    DecodeNodeAddress a{n.node_id(), n.host(), static_cast<uint16_t>(n.port())};
    const Status s = AddDecodeNode(a);
    if (!s.ok()) GetLogger("prefill")->error("{}", s.ToString());
  }
}

void PrefillService::OnDecodeReady(size_t index, const proto::Hello& hello) {
  DecodeLink& d = *decodes_[index];
  const PeerId peer = index + 1;
  if (d.connected) (void)rt_->transport->Disconnect(peer);
  d.connected = false;
  PeerEndpoint ep;
  ep.worker_address.assign(hello.ucx_worker_address().begin(), hello.ucx_worker_address().end());
  ep.rkey.assign(hello.kv_pool_rkey().begin(), hello.kv_pool_rkey().end());
  ep.base_address = hello.kv_pool_base_address();
  ep.region_bytes = hello.kv_pool_bytes();
  Status s = rt_->transport->Connect(peer, ep);
  if (!s.ok()) {
    GetLogger("prefill")->error("decode node {}: UCX connect: {}", hello.node_id(), s.ToString());
    return;
  }
  d.connected = true;
  engine_->SetDecodePeer(d.address.node_id, peer, static_cast<int>(hello.num_kv_blocks()));
  GetLogger("prefill")->info("decode node {} connected ({} blocks)", hello.node_id(), hello.num_kv_blocks());
}

void PrefillService::OnDecodeLost(size_t index, const Status& status) {
  DecodeLink& d = *decodes_[index];
  GetLogger("prefill")->warn("decode node {} lost: {}", d.address.node_id, status.ToString());
  std::vector<PrefillEvent> events;
  engine_->RemoveDecodePeer(d.address.node_id, &events);
  Dispatch(events);
  if (d.connected) {
    (void)rt_->transport->Disconnect(index + 1);
    d.connected = false;
  }
}

void PrefillService::OnRouterMessage(const rpc::Connection::Ptr& conn, proto::Envelope&& env) {
  std::vector<PrefillEvent> events;
  if (env.has_prefill_request()) {
    const proto::PrefillRequest& m = env.prefill_request();
    PrefillJob job;
    job.id = m.request_id();
    job.prompt.assign(m.prompt_token_ids().begin(), m.prompt_token_ids().end());
    job.params = SamplingFromProto(m.sampling());
    job.decode_node = m.decode_node_id();
    job.router_id = conn->peer_hello().node_id();
    job.arrival_us = UnixToSteadyMicros(m.arrival_unix_us());
    job.deadline_us = UnixToSteadyMicros(m.deadline_unix_us());
    job.slo.ttft_ms = std::max(0.0, m.ttft_target_ms());
    job.slo.tpot_ms = std::max(0.0, m.tpot_target_ms());
    job.slo.priority = m.slo_priority();
    job.cache_salt = m.cache_salt();
    Status s = engine_->Add(job);
    if (!s.ok() && s.reason() == kDecodeUnreachable) {
      // Like a decode node's refusal: the router places the request again, elsewhere.
      proto::Envelope out;
      proto::KvReservation* r = out.mutable_kv_reservation();
      r->set_request_id(job.id);
      r->set_decode_node_id(job.decode_node);
      r->set_ok(false);
      r->set_reason(s.message());
      (void)conn->Send(std::move(out));
      return;
    }
    if (!s.ok()) {
      (void)conn->Send(rpc::MakeErrorEnvelope(s, job.id));
      return;
    }
    routers_[job.id] = conn;
  } else if (env.has_abort()) {
    engine_->Abort(env.abort().request_id(), &events);
  } else if (env.has_cluster_view()) {
    OnClusterView(env.cluster_view());
  }
  Dispatch(events);
}

void PrefillService::OnRouterClosed(const rpc::Connection::Ptr& conn) {
  std::vector<std::string> ids;
  for (const auto& [id, c] : routers_) {
    if (c == conn) ids.push_back(id);
  }
  std::vector<PrefillEvent> events;
  for (const std::string& id : ids) {
    engine_->Abort(id, &events);  // nobody would receive its first token
    routers_.erase(id);
  }
  Dispatch(events);
  if (!ids.empty()) {
    GetLogger("prefill")->warn("router {} closed its connection: {} request(s) ended here",
                               conn->peer_hello().node_id(), ids.size());
  }
}

void PrefillService::SendToDecode(const std::string& node_id, proto::Envelope env) {
  DecodeLink* d = FindDecode(node_id);
  if (d == nullptr) return;
  Status s = d->client->Send(std::move(env));
  if (!s.ok()) GetLogger("prefill")->warn("to {}: {}", node_id, s.ToString());
}

void PrefillService::Dispatch(std::vector<PrefillEvent>& events) {
  for (PrefillEvent& ev : events) {
    auto router = routers_.find(ev.request_id);
    const auto to_router = [&](proto::Envelope env) {
      if (router != routers_.end()) (void)router->second->Send(std::move(env));
    };
    proto::Envelope out;
    switch (ev.kind) {
      case PrefillEventKind::kReserve: {
        proto::ReserveKv* m = out.mutable_reserve_kv();
        m->set_request_id(ev.request_id);
        m->mutable_prompt_token_ids()->Add(ev.prompt.begin(), ev.prompt.end());
        *m->mutable_sampling() = SamplingToProto(ev.params);
        m->set_router_id(ev.router_id);
        m->set_arrival_unix_us(SteadyToUnixMicros(ev.arrival_us));
        m->set_tpot_target_ms(ev.tpot_target_ms);
        m->set_slo_priority(ev.slo_priority);
        m->set_cache_salt(ev.cache_salt);
        DecodeLink* d = FindDecode(ev.decode_node);
        const Status sent = d ? d->client->Send(std::move(out)) : UnavailableError("unknown decode node");
        if (!sent.ok()) {  // as if it refused: the router places the request elsewhere
          engine_->PostReservation(ev.decode_node, ev.request_id, false, {},
                                   "cannot reach decode node " + ev.decode_node + ": " + sent.ToString());
        }
        break;
      }
      case PrefillEventKind::kFirstToken: {
        proto::FirstToken* m = out.mutable_first_token();
        m->set_request_id(ev.request_id);
        m->set_token_id(ev.token);
        m->set_prefill_start_unix_us(SteadyToUnixMicros(ev.prefill_start_us));
        m->set_first_token_unix_us(SteadyToUnixMicros(ev.prefill_end_us));
        m->set_finished(ev.finished);
        m->set_finish_reason(FinishReasonToProto(ev.finish_reason));
        m->set_cached_tokens(static_cast<uint32_t>(ev.cached_tokens));
        to_router(std::move(out));
        rt_->metrics->AddGeneratedTokens(1);
        if (ev.finished) routers_.erase(ev.request_id);  // our last word to the router on it
        break;
      }
      case PrefillEventKind::kKvReady: {
        proto::KvReady* m = out.mutable_kv_ready();
        m->set_request_id(ev.request_id);
        m->set_num_layers(static_cast<uint32_t>(rt_->cache->num_layers()));
        m->set_bytes(ev.bytes);
        m->set_transfer_us(ev.transfer_end_us - ev.transfer_start_us);
        m->set_num_prompt_tokens(ev.num_prompt_tokens);
        m->set_first_token_id(ev.token);
        m->set_ok(true);
        m->set_transfer_start_unix_us(SteadyToUnixMicros(ev.transfer_start_us));
        m->set_completed_unix_us(SteadyToUnixMicros(ev.transfer_end_us));
        rt_->metrics->ObserveTransfer(
            static_cast<int64_t>(ev.bytes), ev.transfer_end_us - ev.transfer_start_us,
            ev.prefill_end_us ? std::max<int64_t>(0, ev.transfer_end_us - ev.prefill_end_us) : -1);
        // The router first: it must know the KV landed before it could hear that we died.
        to_router(proto::Envelope(out));
        SendToDecode(ev.decode_node, std::move(out));
        routers_.erase(ev.request_id);
        break;
      }
      case PrefillEventKind::kAbortDecode: {
        proto::Abort* m = out.mutable_abort();
        m->set_request_id(ev.request_id);
        m->set_reason("prefill ended the transfer");
        SendToDecode(ev.decode_node, std::move(out));
        break;
      }
      case PrefillEventKind::kRefused: {
        proto::KvReservation* m = out.mutable_kv_reservation();
        m->set_request_id(ev.request_id);
        m->set_decode_node_id(ev.decode_node);
        m->set_ok(false);
        m->set_reason(ev.reason);
        to_router(std::move(out));
        routers_.erase(ev.request_id);
        break;
      }
      case PrefillEventKind::kError:
        to_router(rpc::MakeErrorEnvelope(ev.error, ev.request_id));
        routers_.erase(ev.request_id);
        break;
    }
  }
  events.clear();
}

void PrefillService::SendLoadReport() {
  proto::Envelope env;
  proto::LoadReport* r = env.mutable_load_report();
  r->set_node_id(options_.node_id);
  r->set_role(proto::ROLE_PREFILL);
  r->set_queued_requests(static_cast<uint32_t>(engine_->num_queued()));
  r->set_queued_tokens(static_cast<uint64_t>(engine_->queued_tokens()));
  r->set_running_requests(static_cast<uint32_t>(engine_->num_transferring()));
  r->set_free_blocks(static_cast<uint32_t>(rt_->cache->pool().num_free()));
  r->set_total_blocks(static_cast<uint32_t>(rt_->cache->num_blocks()));
  for (const auto& d : decodes_) {
    if (d->connected) r->add_connected_decode_nodes(d->address.node_id);
  }
  r->set_latency_factor(rt_->latency_factor());
  reporter_->AddCacheEvents(rt_->cache->pool(), r);
  NodeMetrics::State state;
  state.running = static_cast<int32_t>(engine_->num_transferring());
  state.waiting = static_cast<int32_t>(engine_->num_queued());
  state.total_blocks = rt_->cache->num_blocks();
  state.used_blocks = state.total_blocks - rt_->cache->pool().num_free();
  rt_->metrics->SetState(state);
  reporter_->Broadcast(env, *server_);
}

bool PrefillService::Iterate() {
  rt_->transport->Progress();
  engine_->Poll(&events_);
  const int64_t t0 = SteadyClock::Read();
  const bool ran = engine_->Step(&events_);
  if (ran) {
    const int64_t us = SteadyClock::Read() - t0;
    reporter_->AddBusy(us);
    rt_->ObserveStep(engine_->last_step_shape(), us);
  }
  Dispatch(events_);
  if (reporter_->Due()) SendLoadReport();
  return ran;
}

}  // namespace tandem
