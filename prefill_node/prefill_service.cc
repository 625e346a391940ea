#include "prefill_node/prefill_service.h"

#include <algorithm>
#include <charconv>

#include "common/logging.h"
#include "common/rpc/wire_status.h"

namespace tandem {

Result<DecodeNodeAddress> ParseDecodeNodeAddress(const std::string& text) {
  const size_t eq = text.find('=');
  const size_t colon = text.rfind(':');
  if (eq == std::string::npos || eq == 0 || colon == std::string::npos || colon < eq + 2 ||
      colon + 1 == text.size()) {
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
  ASSIGN_OR_RETURN(rt_, LoadNodeRuntime(options_.runtime));
  engine_ = std::make_unique<PrefillEngine>(*rt_->transformer, *rt_->cache, *rt_->transport, options_.engine);
  const uint64_t hash = rt_->layout.compatibility_hash();

  proto::Hello hello;
  hello.set_role(proto::ROLE_PREFILL);
  hello.set_node_id(options_.node_id);
  hello.set_kv_layout_hash(hash);
  const auto& addr = rt_->transport->LocalAddress();
  hello.set_ucx_worker_address(std::string(addr.begin(), addr.end()));
  hello.set_num_kv_blocks(static_cast<uint32_t>(rt_->cache->num_blocks()));
  hello.set_block_size_tokens(static_cast<uint32_t>(rt_->cache->block_size()));

  rpc::RpcServerOptions so;
  so.host = options_.host;
  so.port = options_.port;
  so.hello = hello;
  rpc::RpcServerCallbacks sc;
  sc.on_message = [this](const rpc::Connection::Ptr& conn, proto::Envelope&& env) {
    auto shared = std::make_shared<proto::Envelope>(std::move(env));
    Post([this, conn, shared] { OnRouterMessage(conn, std::move(*shared)); });
  };
  server_ = std::make_unique<rpc::RpcServer>(so, sc);
  RETURN_IF_ERROR(server_->Start());

  decode_connected_.assign(options_.decode_nodes.size(), false);
  for (size_t i = 0; i < options_.decode_nodes.size(); ++i) {
    const DecodeNodeAddress& d = options_.decode_nodes[i];
    rpc::RpcClientOptions co;
    co.host = d.host;
    co.port = d.port;
    co.hello = hello;
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
    cc.on_ready = [this, i](const proto::Hello& peer) { Post([this, i, peer] { OnDecodeReady(i, peer); }); };
    cc.on_disconnected = [this, i](const Status& s) { Post([this, i, s] { OnDecodeLost(i, s); }); };
    cc.on_message = [](proto::Envelope&&) {};  // decode nodes tell us nothing we act on yet
    decode_clients_.push_back(std::make_unique<rpc::RpcClient>(co, cc));
    RETURN_IF_ERROR(decode_clients_.back()->Start());
  }
  reporter_ = std::make_unique<LoadReporter>(options_.load_report_interval);
  loop_.Start([this] { return engine_->HasWork(); }, [this] { Iterate(); });
  return Status::Ok();
}

void PrefillService::Stop() {
  for (auto& c : decode_clients_) c->Stop();
  if (server_) server_->Stop();
  loop_.Stop();
  // The engine (and its sessions) go before the runtime's transport and pool.
  engine_.reset();
}

void PrefillService::OnDecodeReady(size_t index, const proto::Hello& hello) {
  const PeerId peer = index + 1;
  if (decode_connected_[index]) (void)rt_->transport->Disconnect(peer);
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
  decode_connected_[index] = true;
  engine_->SetDecodePeer(options_.decode_nodes[index].node_id, peer, static_cast<int>(hello.num_kv_blocks()));
  GetLogger("prefill")->info("decode node {} connected ({} blocks)", hello.node_id(), hello.num_kv_blocks());
}

void PrefillService::OnDecodeLost(size_t index, const Status& status) {
  const std::string& node = options_.decode_nodes[index].node_id;
  GetLogger("prefill")->warn("decode node {} lost: {}", node, status.ToString());
  std::vector<PrefillEvent> events;
  engine_->RemoveDecodePeer(node, &events);
  Dispatch(events);
  if (decode_connected_[index]) {
    (void)rt_->transport->Disconnect(index + 1);
    decode_connected_[index] = false;
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
    job.decode_block_ids.assign(m.decode_block_ids().begin(), m.decode_block_ids().end());
    job.arrival_us = m.arrival_unix_us();
    Status s = engine_->Add(job);
    if (!s.ok()) {
      proto::Envelope out;
      proto::Error* e = out.mutable_error();
      e->set_request_id(job.id);
      e->set_code(rpc::ToProtoErrorCode(s.code()));
      e->set_message(s.message());
      (void)conn->Send(std::move(out));
      return;
    }
    routers_[job.id] = conn;
  } else if (env.has_abort()) {
    engine_->Abort(env.abort().request_id(), &events);
  }
  Dispatch(events);
}

void PrefillService::Dispatch(std::vector<PrefillEvent>& events) {
  for (PrefillEvent& ev : events) {
    proto::Envelope out;
    const bool to_router = ev.kind == PrefillEventKind::kFirstToken || ev.kind == PrefillEventKind::kError;
    if (ev.kind == PrefillEventKind::kFirstToken) {
      proto::FirstToken* m = out.mutable_first_token();
      m->set_request_id(ev.request_id);
      m->set_token_id(ev.token);
      m->set_arrival_unix_us(ev.arrival_us);
      m->set_prefill_start_unix_us(ev.prefill_start_us);
      m->set_first_token_unix_us(ev.first_token_us);
      m->set_finished(ev.finished);
      m->set_finish_reason(FinishReasonToProto(ev.finish_reason));
    } else if (ev.kind == PrefillEventKind::kError) {
      proto::Error* m = out.mutable_error();
      m->set_request_id(ev.request_id);
      m->set_code(rpc::ToProtoErrorCode(ev.error.code()));
      m->set_message(ev.error.message());
    } else if (ev.kind == PrefillEventKind::kKvReady) {
      proto::KvReady* m = out.mutable_kv_ready();
      m->set_request_id(ev.request_id);
      m->set_num_layers(static_cast<uint32_t>(rt_->cache->num_layers()));
      m->set_bytes(ev.bytes);
      m->set_transfer_us(ev.transfer_us);
      m->set_num_prompt_tokens(ev.num_prompt_tokens);
      m->set_first_token_id(ev.token);
      m->set_ok(true);
      m->set_completed_unix_us(NowMicros());
    } else {
      proto::Abort* m = out.mutable_abort();
      m->set_request_id(ev.request_id);
      m->set_reason("prefill ended the transfer");
    }
    if (to_router) {
      auto it = routers_.find(ev.request_id);
      if (it != routers_.end()) (void)it->second->Send(std::move(out));
      // An error, or a first token that finishes the request, is the router's last word from us.
      if (ev.kind == PrefillEventKind::kError || ev.finished) routers_.erase(ev.request_id);
    } else {
      if (ev.kind == PrefillEventKind::kKvReady) {
        // The router records the transfer's size and time in its per-request log line.
        auto it = routers_.find(ev.request_id);
        if (it != routers_.end()) (void)it->second->Send(proto::Envelope(out));
      }
      for (size_t i = 0; i < options_.decode_nodes.size(); ++i) {
        if (options_.decode_nodes[i].node_id == ev.decode_node) {
          Status s = decode_clients_[i]->Send(std::move(out));
          if (!s.ok()) GetLogger("prefill")->warn("to {}: {}", ev.decode_node, s.ToString());
          break;
        }
      }
      if (ev.kind == PrefillEventKind::kKvReady || ev.kind == PrefillEventKind::kAbortDecode) {
        routers_.erase(ev.request_id);
      }
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
  reporter_->Broadcast(env, *server_);
}

void PrefillService::Iterate() {
  rt_->transport->Progress();
  engine_->Poll(&events_);
  if (engine_->HasQueued()) {
    const int64_t t0 = NowMicros();
    Status s = engine_->Step(&events_);
    reporter_->AddBusy(NowMicros() - t0);
    if (!s.ok()) GetLogger("prefill")->error("step failed: {}", s.ToString());
  }
  Dispatch(events_);
  if (reporter_->Due()) SendLoadReport();
}

}  // namespace tandem
