// ClusterClient: what the node connections deliver (io threads). See cluster_client.h for the
// protocol and cluster_client_internal.h for the state.
#include <algorithm>

#include "common/logging.h"
#include "common/rpc/wire_status.h"
#include "proto/wire_model.h"
#include "scheduler/cluster_client_internal.h"

namespace tandem {

void ClusterClient::OnNodeReady(size_t node, const proto::Hello& hello) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Node& n = *nodes_[node];
    n.state = NodeState::kReady;
    n.reported = false;  // placement waits for a fresh report from this incarnation
    n.last_error.clear();
    n.load.block_size_tokens = hello.block_size_tokens();
  }
  log_->info("node {} connected (role {}, {} KV blocks of {} tokens)", nodes_[node]->addr.ToString(),
             proto::Role_Name(hello.role()), hello.num_kv_blocks(), hello.block_size_tokens());
  cv_.notify_all();
}

void ClusterClient::OnNodeDisconnected(size_t node, const Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Node& n = *nodes_[node];
    n.state = NodeState::kDown;
    n.reported = false;
    n.last_error = status.ToString();
    std::vector<std::string> failed;
    for (const auto& [id, f] : flights_) {
      // After its KvReady a request no longer needs P. Between the FirstToken and the KvReady
      // the KV is still moving: a dead P will never finish it, and waiting for D's transfer
      // timeout (10 s) would hold the client that long, so it fails now (D drains and frees).
      // P sends its KvReady to us before D, on a connection that delivers it before the EOF.
      const bool on_p = f->p == static_cast<int>(node) &&
                        (f->phase == Flight::Phase::kPrefilling || (f->phase == Flight::Phase::kDecoding && !f->kv_ready));
      const bool on_d = f->d == static_cast<int>(node);
      if (on_p || on_d) failed.push_back(id);
    }
    for (const std::string& id : failed) {
      const Flight& f = *flights_.at(id);
      std::vector<int> survivors;
      if (f.d >= 0 && f.d != static_cast<int>(node)) survivors.push_back(f.d);
      if (f.p >= 0 && f.p != static_cast<int>(node) && f.phase != Flight::Phase::kReserving) survivors.push_back(f.p);
      FinishLocked(id, FinishReason::kError,
                   UnavailableError(std::string(n.prefill ? "prefill" : "decode") + " node " + n.addr.id +
                                    " disconnected: " + status.ToString()),
                   {}, survivors);
    }
  }
  log_->warn("node {} is down: {}", nodes_[node]->addr.ToString(), status.ToString());
  cv_.notify_all();
}

void ClusterClient::OnNodeMessage(size_t node, proto::Envelope&& env) {
  switch (env.payload_case()) {
    case proto::Envelope::kKvReservation:
      OnReservation(node, env.kv_reservation());
      break;
    case proto::Envelope::kFirstToken:
      OnFirstToken(node, env.first_token());
      break;
    case proto::Envelope::kTokenChunk:
      OnTokenChunk(node, env.token_chunk());
      break;
    case proto::Envelope::kError:
      OnNodeError(node, env.error().request_id(), rpc::StatusFromError(env.error()));
      break;
    case proto::Envelope::kAbort:
      OnNodeError(node, env.abort().request_id(),
                  AbortedError("node " + nodes_[node]->addr.id + " aborted the request: " + env.abort().reason()));
      break;
    case proto::Envelope::kLoadReport: {
      const proto::LoadReport& r = env.load_report();
      bool first = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        Node& n = *nodes_[node];
        if (n.state != NodeState::kReady) break;
        NodeLoad& l = n.load;
        l.queued_requests = r.queued_requests();
        l.queued_tokens = r.queued_tokens();
        l.running_requests = r.running_requests();
        l.free_blocks = r.free_blocks();
        l.total_blocks = r.total_blocks();
        l.busy_fraction = r.busy_fraction();
        l.report_us = NowMicros();
        first = !n.reported;
        n.reported = true;
      }
      if (first) cv_.notify_all();
      break;
    }
    case proto::Envelope::kKvReady: {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = flights_.find(env.kv_ready().request_id());
      if (it != flights_.end()) {
        it->second->record.kv_bytes = static_cast<int64_t>(env.kv_ready().bytes());
        it->second->record.kv_transfer_us = env.kv_ready().transfer_us();
        it->second->kv_ready = true;
      }
      break;
    }
    default:
      log_->debug("node {}: ignoring envelope with payload {}", nodes_[node]->addr.id,
                  static_cast<int>(env.payload_case()));
  }
}

void ClusterClient::OnReservation(size_t node, const proto::KvReservation& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = flights_.find(msg.request_id());
  if (it == flights_.end()) {
    // Aborted while D was reserving: our Abort follows the request on the same connection, but
    // say it again in case D answered out of order; Abort is idempotent.
    if (msg.ok()) {
      proto::Envelope env;
      env.mutable_abort()->set_request_id(msg.request_id());
      env.mutable_abort()->set_reason("request no longer in flight");
      nodes_[node]->rpc->Send(std::move(env)).IgnoreError();
    }
    return;
  }
  Flight& f = *it->second;
  if (f.d != static_cast<int>(node) || f.phase != Flight::Phase::kReserving) return;  // stale
  if (!msg.ok()) {
    f.refused.push_back(nodes_[node]->addr.id);
    f.last_refusal = nodes_[node]->addr.id + ": " + msg.reason();
    log_->info("{}: decode node {} refused the reservation: {}", f.wire_id, nodes_[node]->addr.id, msg.reason());
    const Status placed = PlaceLocked(f);
    if (!placed.ok()) {
      FinishLocked(f.wire_id, FinishReason::kError,
                   placed.code() == StatusCode::kResourceExhausted ? placed : ResourceExhaustedError(placed.message()),
                   {}, {});
    }
    return;
  }
  f.phase = Flight::Phase::kPrefilling;
  f.record.decode_node_id = nodes_[node]->addr.id;
  f.record.prefill_node_id = nodes_[f.p]->addr.id;
  f.record.timeline.scheduled_us = NowMicros();
  proto::Envelope env;
  proto::PrefillRequest* pr = env.mutable_prefill_request();
  pr->set_request_id(f.wire_id);
  pr->mutable_prompt_token_ids()->Add(f.request.prompt.begin(), f.request.prompt.end());
  *pr->mutable_sampling() = SamplingToProto(f.request.params);
  pr->set_decode_node_id(nodes_[node]->addr.id);
  pr->mutable_decode_block_ids()->Add(msg.block_ids().begin(), msg.block_ids().end());
  pr->set_arrival_unix_us(ToUnixMicros(f.request.arrival_us));
  pr->set_scheduled_unix_us(ToUnixMicros(f.record.timeline.scheduled_us));
  const Status sent = nodes_[f.p]->rpc->Send(std::move(env));
  if (!sent.ok()) {
    FinishLocked(f.wire_id, FinishReason::kError,
                 UnavailableError("cannot reach prefill node " + nodes_[f.p]->addr.id + ": " + sent.ToString()), {},
                 {f.d});
    return;
  }
}

void ClusterClient::OnFirstToken(size_t node, const proto::FirstToken& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = flights_.find(msg.request_id());
  if (it == flights_.end()) return;
  Flight& f = *it->second;
  if (f.p != static_cast<int>(node) || f.phase != Flight::Phase::kPrefilling) return;
  f.phase = Flight::Phase::kDecoding;
  f.record.timeline.first_token_us = NowMicros();
  if (msg.finished()) {
    // P told D to release the reservation; say it too, in case P fails before it does.
    FinishLocked(f.wire_id, FinishReasonFromProto(msg.finish_reason()), Status::Ok(), {msg.token_id()}, {f.d});
    return;
  }
  EmitLocked(f, {msg.token_id()});
  std::vector<proto::TokenChunk> held = std::move(f.held);
  f.held.clear();
  const std::string id = f.wire_id;
  for (const proto::TokenChunk& chunk : held) {
    auto again = flights_.find(id);
    if (again == flights_.end()) break;
    Flight& g = *again->second;
    std::vector<int32_t> tokens(chunk.token_ids().begin(), chunk.token_ids().end());
    if (chunk.finished()) {
      const FinishReason reason = FinishReasonFromProto(chunk.finish_reason());
      FinishLocked(id, reason,
                   reason == FinishReason::kError ? InternalError("the decode node failed the request") : Status::Ok(),
                   std::move(tokens), {});
      break;
    }
    EmitLocked(g, std::move(tokens));
  }
}

void ClusterClient::OnTokenChunk(size_t node, const proto::TokenChunk& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = flights_.find(msg.request_id());
  if (it == flights_.end()) return;
  Flight& f = *it->second;
  if (f.d != static_cast<int>(node) || f.phase == Flight::Phase::kReserving) return;
  if (f.phase == Flight::Phase::kPrefilling) {
    f.held.push_back(msg);  // overtook the FirstToken
    return;
  }
  std::vector<int32_t> tokens(msg.token_ids().begin(), msg.token_ids().end());
  if (msg.finished()) {
    const FinishReason reason = FinishReasonFromProto(msg.finish_reason());
    FinishLocked(f.wire_id, reason,
                 reason == FinishReason::kError ? InternalError("the decode node failed the request") : Status::Ok(),
                 std::move(tokens), {});
    return;
  }
  EmitLocked(f, std::move(tokens));
}

void ClusterClient::OnNodeError(size_t node, const std::string& request_id, const Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = flights_.find(request_id);
  if (it == flights_.end()) {
    if (!request_id.empty() || !status.ok()) {
      log_->warn("node {}: error for {}: {}", nodes_[node]->addr.id, request_id.empty() ? "-" : request_id,
                 status.ToString());
    }
    return;
  }
  const Flight& f = *it->second;
  if (f.p != static_cast<int>(node) && f.d != static_cast<int>(node)) return;
  std::vector<int> others;
  if (f.d >= 0 && f.d != static_cast<int>(node)) others.push_back(f.d);
  if (f.p >= 0 && f.p != static_cast<int>(node) && f.phase != Flight::Phase::kReserving) others.push_back(f.p);
  FinishLocked(request_id, FinishReason::kError, status.ok() ? InternalError("node error without a code") : status, {},
               others);
}

}  // namespace tandem
