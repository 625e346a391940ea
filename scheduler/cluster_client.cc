// ClusterClient: the public API, placement, events and the dispatcher (the io-thread side is
// cluster_client_messages.cc).
#include "scheduler/cluster_client.h"

#include <algorithm>
#include <random>

#include "common/logging.h"
#include "common/rpc/wire_status.h"
#include "proto/wire_model.h"
#include "scheduler/cluster_client_internal.h"

namespace tandem {

std::string_view NodeStateName(ClusterClient::NodeState state) {
  switch (state) {
    case ClusterClient::NodeState::kConnecting: return "connecting";
    case ClusterClient::NodeState::kReady: return "ready";
    case ClusterClient::NodeState::kDown: return "down";
  }
  return "?";
}

ClusterClient::ClusterClient(ClusterClientOptions options, std::unique_ptr<PlacementPolicy> policy)
    : options_(std::move(options)), policy_(std::move(policy)), log_(GetLogger("cluster")) {
  for (const NodeAddress& a : options_.cluster.prefill) {
    auto n = std::make_unique<Node>();
    n->addr = a;
    n->prefill = true;
    n->load.node_id = a.id;
    nodes_.push_back(std::move(n));
  }
  for (const NodeAddress& a : options_.cluster.decode) {
    auto n = std::make_unique<Node>();
    n->addr = a;
    n->load.node_id = a.id;
    nodes_.push_back(std::move(n));
  }
  dispatcher_ = std::thread([this] { DispatchLoop(); });
}

Result<std::unique_ptr<ClusterClient>> ClusterClient::Create(ClusterClientOptions options,
                                                             std::unique_ptr<PlacementPolicy> policy) {
  RETURN_IF_ERROR(options.cluster.Validate());
  RETURN_IF_ERROR(options.connection.Validate());
  RETURN_IF_ERROR(options.backoff.Validate());
  if (!policy) return InvalidArgumentError("ClusterClient needs a placement policy");
  if (options.max_decode_attempts < 1) return InvalidArgumentError("max_decode_attempts must be >= 1");
  std::unique_ptr<ClusterClient> client(new ClusterClient(std::move(options), std::move(policy)));
  RETURN_IF_ERROR(client->StartNodes());
  return client;
}

Status ClusterClient::StartNodes() {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = *nodes_[i];
    rpc::RpcClientOptions o;
    o.host = n.addr.host;
    o.port = n.addr.port;
    o.hello.set_role(proto::ROLE_ROUTER);
    o.hello.set_node_id(options_.router_id);
    o.hello.set_model_name(options_.model_name);
    o.connection = options_.connection;
    o.backoff = options_.backoff;
    const proto::Role want = n.prefill ? proto::ROLE_PREFILL : proto::ROLE_DECODE;
    const std::string want_id = n.addr.id;
    o.validator = [want, want_id](const proto::Hello& peer) -> Status {
      if (peer.role() != want) {
        return FailedPreconditionError("node at this address has role " + proto::Role_Name(peer.role()) +
                                       ", expected " + proto::Role_Name(want));
      }
      if (peer.node_id() != want_id) {
        return FailedPreconditionError("node at this address is '" + peer.node_id() + "', expected '" + want_id + "'");
      }
      return Status::Ok();
    };
    rpc::RpcClientCallbacks cb;
    cb.on_ready = [this, i](const proto::Hello& hello) { OnNodeReady(i, hello); };
    cb.on_message = [this, i](proto::Envelope&& env) { OnNodeMessage(i, std::move(env)); };
    cb.on_disconnected = [this, i](const Status& st) { OnNodeDisconnected(i, st); };
    n.rpc = std::make_unique<rpc::RpcClient>(std::move(o), std::move(cb));
  }
  for (auto& n : nodes_) {
    const Status st = n->rpc->Start();
    if (!st.ok()) return Status(st.code(), "node " + n->addr.ToString() + ": " + st.message());
  }
  return Status::Ok();
}

ClusterClient::~ClusterClient() { Stop(); }

void ClusterClient::Stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      // Tell the nodes first (the drain in RpcClient::Stop flushes these) so no block leaks.
      for (auto& [id, f] : flights_) {
        proto::Envelope env;
        env.mutable_abort()->set_request_id(id);
        env.mutable_abort()->set_reason("router shutting down");
        env.mutable_abort()->set_prefill_not_asked(f->phase == Flight::Phase::kReserving);
        if (f->p >= 0 && f->phase != Flight::Phase::kReserving) nodes_[f->p]->rpc->Send(env).IgnoreError();
        if (f->d >= 0) nodes_[f->d]->rpc->Send(env).IgnoreError();
      }
    }
    for (auto& n : nodes_) {
      if (n->rpc) n->rpc->Stop();  // no io callbacks after this
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<std::string> ids;
      for (const auto& [id, f] : flights_) ids.push_back(id);
      for (const std::string& id : ids) {
        FinishLocked(id, FinishReason::kError, UnavailableError("the router is shutting down"), {}, {});
      }
      dispatcher_exit_ = true;
    }
    cv_.notify_all();
    if (dispatcher_.joinable()) dispatcher_.join();
  });
}

Status ClusterClient::Submit(ServingRequest request, EventCallback callback) {
  if (request.prompt.empty()) return InvalidArgumentError("the prompt is empty");
  if (request.params.max_tokens < 1) return InvalidArgumentError("max_tokens must be >= 1");
  if (!callback) return InvalidArgumentError("no event callback");
  if (!request.params.seed) {
    // P samples the first token and D the rest: both must use the same seed.
    static thread_local std::mt19937_64 rng(std::random_device{}());
    request.params.seed = rng();
  }
  if (request.arrival_us == 0) request.arrival_us = NowMicros();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return UnavailableError("the router is shutting down");
  const std::string wire_id = WireId(request.id);
  if (flights_.count(wire_id) != 0) {
    return AlreadyExistsError("request " + std::to_string(request.id) + " is already in flight");
  }
  auto f = std::make_unique<Flight>();
  f->wire_id = wire_id;
  f->callback = std::move(callback);
  f->record.id = request.id;
  f->record.prompt_tokens = static_cast<int32_t>(request.prompt.size());
  f->record.timeline.arrival_us = request.arrival_us;
  f->request = std::move(request);
  RETURN_IF_ERROR(PlaceLocked(*f));  // no events follow an error
  flights_.emplace(wire_id, std::move(f));
  return Status::Ok();
}

Status ClusterClient::PlaceLocked(Flight& f) {
  const PlacementRequest want{static_cast<int32_t>(f.request.prompt.size()), f.request.params.max_tokens};
  while (f.record.decode_attempts < options_.max_decode_attempts) {
    std::vector<NodeLoad> prefill, decode;
    for (const auto& n : nodes_) {
      if (!n->healthy()) continue;
      if (n->prefill) {
        prefill.push_back(n->load);
      } else if (std::find(f.refused.begin(), f.refused.end(), n->addr.id) == f.refused.end()) {
        decode.push_back(n->load);
      }
    }
    auto placed = policy_->Place(want, prefill, decode);
    if (!placed.ok()) {
      if (f.refused.empty()) return placed.status();
      return ResourceExhaustedError("no decode node could reserve KV for the request (" +
                                    std::to_string(f.refused.size()) + " refused; last: " + f.last_refusal + ")");
    }
    int p = -1, d = -1;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i]->addr.id == placed->prefill_node_id) p = static_cast<int>(i);
      if (nodes_[i]->addr.id == placed->decode_node_id) d = static_cast<int>(i);
    }
    if (p < 0 || d < 0 || !nodes_[p]->prefill || nodes_[d]->prefill) {
      return InternalError("placement policy " + std::string(policy_->name()) + " chose unknown nodes " +
                           placed->prefill_node_id + ", " + placed->decode_node_id);
    }
    f.p = p;
    f.d = d;
    f.phase = Flight::Phase::kReserving;
    ++f.record.decode_attempts;
    proto::Envelope env;
    proto::PrefillRequest* pr = env.mutable_prefill_request();
    pr->set_request_id(f.wire_id);
    pr->mutable_prompt_token_ids()->Add(f.request.prompt.begin(), f.request.prompt.end());
    *pr->mutable_sampling() = SamplingToProto(f.request.params);
    pr->set_decode_node_id(nodes_[d]->addr.id);
    pr->set_arrival_unix_us(ToUnixMicros(f.request.arrival_us));
    const Status sent = nodes_[d]->rpc->Send(std::move(env));
    if (sent.ok()) {
      NodeLoad& dl = nodes_[d]->load;  // charged until the next report replaces it
      dl.free_blocks -= std::min(dl.free_blocks, BlocksNeeded(want, dl.block_size_tokens));
      // P too, now rather than when D answers: a burst that arrives within D's round trip
      // must not all land on one prefill node.
      nodes_[p]->load.queued_tokens += f.request.prompt.size();
      return Status::Ok();
    }
    f.refused.push_back(nodes_[d]->addr.id);
    f.last_refusal = nodes_[d]->addr.id + ": " + sent.ToString();
  }
  return ResourceExhaustedError("no decode node could reserve KV for the request after " +
                                std::to_string(f.record.decode_attempts) + " attempts (last: " + f.last_refusal + ")");
}

void ClusterClient::Abort(int64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string id = WireId(request_id);
  auto it = flights_.find(id);
  if (it == flights_.end()) return;
  const Flight& f = *it->second;
  std::vector<int> to;
  if (f.d >= 0) to.push_back(f.d);
  if (f.p >= 0 && f.phase != Flight::Phase::kReserving) to.push_back(f.p);
  FinishLocked(id, FinishReason::kAbort, Status::Ok(), {}, to);
}

bool ClusterClient::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  return std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->healthy(); });
}

Status ClusterClient::WaitReady(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  const bool ok = cv_.wait_for(lock, timeout, [this] {
    return stopping_ || std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->healthy(); });
  });
  if (ok && !stopping_) return Status::Ok();
  std::string missing;
  for (const auto& n : nodes_) {
    if (n->healthy()) continue;
    missing += (missing.empty() ? "" : ", ") + n->addr.ToString() + " (" + std::string(NodeStateName(n->state)) +
               (n->state == NodeState::kReady ? ", no load report yet" : "") +
               (n->last_error.empty() ? "" : ": " + n->last_error) + ")";
  }
  if (stopping_) return UnavailableError("the router is shutting down");
  return DeadlineExceededError("cluster not ready after " + std::to_string(timeout.count()) + " ms: " + missing);
}

LoadInfo ClusterClient::Load() const {
  std::lock_guard<std::mutex> lock(mu_);
  LoadInfo info;
  info.num_requests = static_cast<int32_t>(flights_.size());
  bool any = false;
  int32_t free = 0, total = 0;
  for (const auto& n : nodes_) {
    info.nodes.push_back(NodeLoadInfo{n->addr.id, n->prefill ? "prefill" : "decode",
                                      std::string(NodeStateName(n->state)), n->load.queued_requests,
                                      n->load.queued_tokens, n->load.running_requests, n->load.free_blocks,
                                      n->load.total_blocks, n->load.busy_fraction, n->last_error});
    if (n->prefill || !n->healthy()) continue;
    any = true;
    free += static_cast<int32_t>(n->load.free_blocks);
    total += static_cast<int32_t>(n->load.total_blocks);
  }
  if (any) {
    info.num_free_kv_blocks = free;
    info.num_total_kv_blocks = total;
  }
  return info;
}

int64_t ClusterClient::MaxSequenceTokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t most = -1;
  for (const auto& n : nodes_) {
    if (n->prefill || !n->healthy()) continue;
    most = std::max<int64_t>(most, static_cast<int64_t>(n->load.total_blocks) * n->load.block_size_tokens);
  }
  return most;
}

std::vector<ClusterClient::NodeStatus> ClusterClient::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<NodeStatus> out;
  for (const auto& n : nodes_) {
    out.push_back(NodeStatus{n->addr.id, n->prefill, n->state, n->reported, n->load, n->last_error});
  }
  return out;
}

// ---------------------------------------------------------------- events

void ClusterClient::EmitLocked(Flight& f, std::vector<int32_t> tokens) {
  InferenceEvent ev;
  ev.request_id = f.request.id;
  ev.emitted_us = NowMicros();
  for (size_t i = 0; i < tokens.size(); ++i) f.record.timeline.token_us.push_back(ev.emitted_us);
  f.record.output_tokens += static_cast<int32_t>(tokens.size());
  ev.tokens = std::move(tokens);
  EnqueueLocked([cb = f.callback, ev = std::move(ev)]() mutable { cb(std::move(ev)); });
}

void ClusterClient::FinishLocked(const std::string& wire_id, FinishReason reason, Status status,
                                 std::vector<int32_t> tokens, const std::vector<int>& abort_nodes) {
  auto it = flights_.find(wire_id);
  if (it == flights_.end()) return;
  std::unique_ptr<Flight> f = std::move(it->second);
  flights_.erase(it);
  for (int n : abort_nodes) {
    proto::Envelope env;
    env.mutable_abort()->set_request_id(wire_id);
    env.mutable_abort()->set_reason(reason == FinishReason::kAbort ? "aborted by the client" : status.ToString());
    // Still reserving: P never heard of it, so D may free the blocks without a drain.
    env.mutable_abort()->set_prefill_not_asked(f->phase == Flight::Phase::kReserving);
    nodes_[n]->rpc->Send(std::move(env)).IgnoreError();  // a down node has nothing to free
  }
  InferenceEvent ev;
  ev.request_id = f->request.id;
  ev.emitted_us = NowMicros();
  for (size_t i = 0; i < tokens.size(); ++i) f->record.timeline.token_us.push_back(ev.emitted_us);
  f->record.output_tokens += static_cast<int32_t>(tokens.size());
  ev.tokens = std::move(tokens);
  ev.finish_reason = reason;
  ev.status = reason == FinishReason::kError ? status : Status::Ok();
  f->record.timeline.finish_us = ev.emitted_us;
  if (f->record.timeline.first_token_us == 0 && !f->record.timeline.token_us.empty()) {
    f->record.timeline.first_token_us = f->record.timeline.token_us.front();
  }
  f->record.finish_reason = reason;
  f->record.status = ev.status;
  ev.timeline = f->record.timeline;
  RequestRecord record = f->record;
  const RequestTimeline& t = record.timeline;
  log_->info("{} {}: P={} D={} prompt={} output={} ttft_ms={:.1f} tpot_ms={:.2f} e2e_ms={:.1f} kv_bytes={} "
             "kv_transfer_us={} decode_attempts={}{}",
             wire_id, FinishReasonName(reason), record.prefill_node_id.empty() ? "-" : record.prefill_node_id,
             record.decode_node_id.empty() ? "-" : record.decode_node_id, record.prompt_tokens, record.output_tokens,
             t.first_token_us ? t.ttft_ms() : -1.0, t.mean_tpot_ms(), (t.finish_us - t.arrival_us) / 1000.0,
             record.kv_bytes, record.kv_transfer_us, record.decode_attempts,
             ev.status.ok() ? "" : " error=" + ev.status.ToString());
  EnqueueLocked([cb = std::move(f->callback), ev = std::move(ev), record = std::move(record),
                 on_finished = options_.on_finished]() mutable {
    cb(std::move(ev));
    if (on_finished) on_finished(record);
  });
}

void ClusterClient::EnqueueLocked(std::function<void()> work) {
  work_.push_back(std::move(work));
  cv_.notify_all();
}

void ClusterClient::DispatchLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return !work_.empty() || dispatcher_exit_; });
    if (work_.empty() && dispatcher_exit_) return;
    if (work_.empty()) {
      lock.unlock();
      CheckTimeouts();
      lock.lock();
      continue;
    }
    std::deque<std::function<void()>> batch;
    batch.swap(work_);
    lock.unlock();
    for (auto& w : batch) w();  // user callbacks: never under mu_
    batch.clear();              // release captured callbacks outside the lock too
    lock.lock();
  }
}

void ClusterClient::CheckTimeouts() {
  if (options_.first_token_timeout.count() <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = NowMicros();
  const int64_t limit = options_.first_token_timeout.count() * 1000;
  std::vector<std::string> late;
  for (const auto& [id, f] : flights_) {
    if (f->phase != Flight::Phase::kDecoding && now - f->request.arrival_us > limit) late.push_back(id);
  }
  for (const std::string& id : late) {
    const Flight& f = *flights_.at(id);
    std::vector<int> to;
    if (f.d >= 0) to.push_back(f.d);
    if (f.p >= 0 && f.phase != Flight::Phase::kReserving) to.push_back(f.p);
    FinishLocked(id, FinishReason::kError,
                 DeadlineExceededError("no first token after " + std::to_string(options_.first_token_timeout.count()) +
                                       " ms"),
                 {}, to);
  }
}

}  // namespace tandem
