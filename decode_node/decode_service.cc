#include "decode_node/decode_service.h"

#include <algorithm>

#include "common/clock.h"
#include "common/logging.h"
#include "common/rpc/cluster_auth.h"
#include "common/rpc/tls.h"
#include "common/rpc/wire_status.h"

namespace tandem {

namespace {
// Longer than any request may wait for its first token (the router's deadline, 60 s by default),
// so no ReserveKv for an aborted request can still be on its way.
constexpr int64_t kTombstoneUs = 120'000'000;
}  // namespace

DecodeService::DecodeService(DecodeServiceOptions options) : options_(std::move(options)) {}

DecodeService::~DecodeService() { Stop(); }

Status DecodeService::Start() {
  std::string cluster_secret;
  if (!options_.runtime.cluster_secret_file.empty()) {
    ASSIGN_OR_RETURN(cluster_secret, rpc::LoadClusterSecret(options_.runtime.cluster_secret_file));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<rpc::TlsContext> tls, rpc::LoadTlsContext(options_.runtime.tls));
  ASSIGN_OR_RETURN(rt_, LoadNodeRuntime(options_.runtime));
  RETURN_IF_ERROR(rt_->StartMetrics(options_.runtime, "decode", options_.node_id, options_.host));
  DecodeEngineOptions engine_options = options_.engine;
  if (rt_->profile && !engine_options.step_time_us) {
    // TPOT-aware admission on the profile, as this node corrects it (engine thread only).
    NodeRuntime* rt = rt_.get();
    engine_options.step_time_us = [rt](int32_t batch, int64_t context) {
      return rt->profile->DecodeStepUs(batch, context) * rt->correction.factor();
    };
  }
  engine_ = std::make_unique<DecodeEngine>(*rt_->transformer, *rt_->cache, std::move(engine_options));
  // The routers' prefix index comes from these (each load report drains them).
  rt_->cache->pool().RecordCacheEvents(rt_->cache->pool().prefix_caching());
  const uint64_t hash = rt_->layout.compatibility_hash();
  proto::Hello hello;
  hello.set_role(proto::ROLE_DECODE);
  hello.set_node_id(options_.node_id);
  hello.set_kv_layout_hash(hash);
  const PeerEndpoint& ep = rt_->endpoint;
  hello.set_ucx_worker_address(std::string(ep.worker_address.begin(), ep.worker_address.end()));
  hello.set_kv_pool_rkey(std::string(ep.rkey.begin(), ep.rkey.end()));
  hello.set_kv_pool_base_address(ep.base_address);
  hello.set_kv_pool_bytes(ep.region_bytes);
  hello.set_num_kv_blocks(static_cast<uint32_t>(rt_->cache->num_blocks()));
  hello.set_block_size_tokens(static_cast<uint32_t>(rt_->cache->block_size()));
  hello.set_bytes_per_block(rt_->cache->bytes_per_block());
  hello.set_kv_reserves_output_blocks(options_.engine.kv_allocation == KvAllocation::kReserve);

  rpc::RpcServerOptions so;
  so.host = options_.host;
  so.port = options_.port;
  so.hello = hello;
  so.connection.cluster_secret = cluster_secret;
  so.connection.tls = tls;
  so.validator = [hash](const proto::Hello& peer) {
    if (peer.role() == proto::ROLE_PREFILL && peer.kv_layout_hash() != hash) {
      return FailedPreconditionError("prefill node " + peer.node_id() + " KV layout hash " +
                                     std::to_string(peer.kv_layout_hash()) + " differs from ours " +
                                     std::to_string(hash));
    }
    return Status::Ok();
  };
  rpc::RpcServerCallbacks sc;
  sc.on_message = [this](const rpc::Connection::Ptr& conn, proto::Envelope&& env) {
    auto shared = std::make_shared<proto::Envelope>(std::move(env));
    Post([this, conn, shared] { OnMessage(conn, std::move(*shared)); });
  };
  sc.on_peer_closed = [this](const rpc::Connection::Ptr& conn, const Status&) {
    Post([this, conn] { OnPeerClosed(conn); });
  };
  server_ = std::make_unique<rpc::RpcServer>(so, sc);
  RETURN_IF_ERROR(server_->Start());
  reporter_ = std::make_unique<LoadReporter>(options_.load_report_interval);
  loop_.Start([this] { return Iterate(); });
  return Status::Ok();
}

void DecodeService::Stop() {
  if (server_) server_->Stop();
  loop_.Stop();
  engine_.reset();
}

void DecodeService::SendError(const rpc::Connection::Ptr& conn, const std::string& id, const Status& s) {
  proto::Envelope out;
  proto::Error* e = out.mutable_error();
  e->set_request_id(id);
  e->set_code(rpc::ToProtoErrorCode(s.code()));
  e->set_message(s.message());
  if (conn) (void)conn->Send(std::move(out));
}

rpc::Connection::Ptr DecodeService::FindRouter(const std::string& router_id) const {
  for (const auto& peer : server_->ReadyPeers()) {
    if (peer->peer_hello().role() == proto::ROLE_ROUTER && peer->peer_hello().node_id() == router_id) return peer;
  }
  return nullptr;
}

void DecodeService::OnReserve(const rpc::Connection::Ptr& prefill, const proto::ReserveKv& m) {
  proto::Envelope out;
  proto::KvReservation* r = out.mutable_kv_reservation();
  r->set_request_id(m.request_id());
  r->set_decode_node_id(options_.node_id);
  rpc::Connection::Ptr router = FindRouter(m.router_id());
  Result<std::vector<int>> blocks = UnavailableError("router '" + m.router_id() + "' is not connected here");
  int32_t cached_blocks = 0;
  auto early = router ? aborted_early_.find(router) : aborted_early_.end();
  if (early != aborted_early_.end() && early->second.ids.erase(m.request_id()) > 0) {
    blocks = AbortedError("request " + m.request_id() + " was aborted by the router before this reservation");
  } else if (router) {
    DecodeJob job;
    job.id = m.request_id();
    job.prompt.assign(m.prompt_token_ids().begin(), m.prompt_token_ids().end());
    job.params = SamplingFromProto(m.sampling());
    job.arrival_us = UnixToSteadyMicros(m.arrival_unix_us());
    job.tpot_target_ms = std::max(0.0, m.tpot_target_ms());
    job.slo_priority = m.slo_priority();
    job.cache_salt = m.cache_salt();
    blocks = engine_->Reserve(std::move(job), &cached_blocks);
  }
  r->set_reserved_unix_us(UnixNowMicros());
  if (blocks.ok()) {
    r->set_ok(true);
    r->set_cached_blocks(static_cast<uint32_t>(cached_blocks));
    for (int b : *blocks) r->add_block_ids(static_cast<uint32_t>(b));
    routers_[m.request_id()] = router;
    prefills_[m.request_id()] = prefill;
  } else {
    r->set_ok(false);
    r->set_reason(blocks.status().ToString());
  }
  (void)prefill->Send(std::move(out));
}

void DecodeService::OnPeerClosed(const rpc::Connection::Ptr& conn) {
  const bool router = conn->peer_hello().role() == proto::ROLE_ROUTER;
  aborted_early_.erase(conn);
  std::map<std::string, rpc::Connection::Ptr>& owners = router ? routers_ : prefills_;
  std::vector<std::string> ids;
  for (const auto& [id, c] : owners) {
    if (c == conn) ids.push_back(id);
  }
  for (const std::string& id : ids) {
    if (router) {
      engine_->Abort(id);  // nobody would receive its tokens
      routers_.erase(id);
      prefills_.erase(id);
    } else {
      engine_->OnPrefillLost(id);
      prefills_.erase(id);
    }
  }
  if (!ids.empty()) {
    GetLogger("decode")->warn("{} {} closed its connection: {} request(s) ended here",
                              router ? "router" : "prefill node", conn->peer_hello().node_id(), ids.size());
  }
}

void DecodeService::OnMessage(const rpc::Connection::Ptr& conn, proto::Envelope&& env) {
  std::vector<DecodeEvent> events;
  const bool from_prefill = conn->peer_hello().role() == proto::ROLE_PREFILL;
  if (env.has_reserve_kv() && from_prefill) {
    OnReserve(conn, env.reserve_kv());
  } else if (env.has_kv_ready() && from_prefill) {
    const proto::KvReady& m = env.kv_ready();
    prefills_.erase(m.request_id());  // from now on the request needs nothing of the prefill node
    if (m.ok()) {
      const TransferStamps transfer{static_cast<int64_t>(m.bytes()), UnixToSteadyMicros(m.transfer_start_unix_us()),
                                    UnixToSteadyMicros(m.completed_unix_us())};
      rt_->metrics->ObserveTransfer(transfer.bytes, transfer.end_us - transfer.start_us);
      Status s = engine_->OnKvReady(m.request_id(), m.first_token_id(), &events, transfer);
      if (!s.ok()) GetLogger("decode")->warn("{}", s.ToString());
    } else {
      engine_->OnPeerAborted(m.request_id());
      auto it = routers_.find(m.request_id());
      if (it != routers_.end()) {
        SendError(it->second, m.request_id(), UnavailableError("prefill failed: " + m.reason()));
        routers_.erase(it);
      }
    }
  } else if (env.has_abort()) {
    const std::string& id = env.abort().request_id();
    if (from_prefill) {
      engine_->OnPeerAborted(id);  // no write of the prefill node's is in flight: free at once
    } else if (!routers_.count(id)) {
      // Not reserved here (yet): its ReserveKv may still be on its way through the prefill node.
      Tombstones& t = aborted_early_[conn];
      const int64_t now = SteadyClock::Read();
      while (!t.order.empty() && now - t.order.front().first > kTombstoneUs) {
        t.ids.erase(t.order.front().second);
        t.order.pop_front();
      }
      if (t.ids.insert(id).second) t.order.emplace_back(now, id);
    } else {
      engine_->Abort(id);  // a reservation drains (the prefill node may still write into it)
    }
    routers_.erase(id);
    prefills_.erase(id);
  } else {
    GetLogger("decode")->debug("ignoring envelope with payload {} from {}", static_cast<int>(env.payload_case()),
                               conn->peer_hello().node_id());
  }
  Dispatch(events);
}

void DecodeService::Dispatch(std::vector<DecodeEvent>& events) {
  for (DecodeEvent& ev : events) {
    auto it = routers_.find(ev.request_id);
    if (it == routers_.end()) continue;
    if (ev.kind == DecodeEventKind::kError) {
      SendError(it->second, ev.request_id, ev.error);
      prefills_.erase(ev.request_id);
      routers_.erase(it);
      continue;
    }
    proto::Envelope out;
    proto::TokenChunk* m = out.mutable_token_chunk();
    m->set_request_id(ev.request_id);
    for (int32_t t : ev.tokens) m->add_token_ids(t);
    m->set_finished(ev.finished);
    m->set_finish_reason(FinishReasonToProto(ev.finish_reason));
    m->set_emitted_unix_us(UnixNowMicros());
    m->set_num_generated_tokens(ev.num_generated);
    m->set_decode_admitted_unix_us(SteadyToUnixMicros(ev.decode_admitted_us));
    m->set_preemptions(static_cast<uint32_t>(ev.preemptions));
    if (ev.transfer.bytes >= 0) {
      m->set_kv_bytes(static_cast<uint64_t>(ev.transfer.bytes));
      m->set_transfer_start_unix_us(SteadyToUnixMicros(ev.transfer.start_us));
      m->set_transfer_end_unix_us(SteadyToUnixMicros(ev.transfer.end_us));
    }
    (void)it->second->Send(std::move(out));
    if (ev.finished) routers_.erase(it);
  }
  events.clear();
}

void DecodeService::SendLoadReport() {
  proto::Envelope env;
  proto::LoadReport* r = env.mutable_load_report();
  r->set_node_id(options_.node_id);
  r->set_role(proto::ROLE_DECODE);
  r->set_queued_requests(static_cast<uint32_t>(engine_->num_awaiting()));
  r->set_running_requests(static_cast<uint32_t>(engine_->num_running()));
  r->set_free_blocks(static_cast<uint32_t>(engine_->free_blocks()));
  r->set_total_blocks(static_cast<uint32_t>(engine_->total_blocks()));
  r->set_latency_factor(rt_->latency_factor());
  reporter_->AddCacheEvents(rt_->cache->pool(), r);
  NodeMetrics::State state;
  state.running = engine_->num_batched();
  state.waiting = engine_->num_awaiting() + engine_->num_running() - engine_->num_batched();
  state.total_blocks = engine_->total_blocks();
  state.used_blocks = state.total_blocks - engine_->free_blocks();
  state.reserved_unfilled_blocks = engine_->awaiting_blocks();
  state.preemptions = engine_->num_preemptions();
  rt_->metrics->SetState(state);
  reporter_->Broadcast(env, *server_);
}

bool DecodeService::Iterate() {
  rt_->transport->Progress();  // also while idle: incoming puts may need it
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
