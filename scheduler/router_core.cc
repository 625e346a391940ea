// RouterCore: requests (placement, the queue, events, deadlines). Node events are in
// router_core_nodes.cc.
#include "scheduler/router_core.h"

#include <algorithm>

#include "scheduler/router_core_flight.h"

namespace tandem {

RouterCore::RouterCore(std::vector<NodeSpec> nodes, std::unique_ptr<PlacementPolicy> policy, RouterCoreOptions options)
    : policy_(std::move(policy)), options_(std::move(options)) {
  for (NodeSpec& spec : nodes) {
    NodeView v;
    v.id = std::move(spec.id);
    v.role = spec.role;
    node_index_[v.id] = static_cast<NodeIndex>(nodes_.size());
    nodes_.push_back(std::move(v));
  }
  for (NodeView& v : nodes_) {
    if (v.role == NodeRole::kPrefill) v.reaches.assign(nodes_.size(), false);
  }
}

RouterCore::~RouterCore() = default;

NodeIndex RouterCore::FindNode(const std::string& id) const {
  auto it = node_index_.find(id);
  return it == node_index_.end() ? -1 : it->second;
}

Status RouterCore::Submit(std::shared_ptr<const ServingRequest> request, int64_t now, RouterActions* out) {
  if (shutting_down_) return UnavailableError("the router is shutting down");
  RETURN_IF_ERROR(ValidateRequest(request->prompt, request->params, options_.limits));
  if (flights_.count(request->id) != 0) {
    return AlreadyExistsError("request " + std::to_string(request->id) + " is already in flight");
  }
  auto owned = std::make_unique<Flight>();
  Flight& f = *owned;
  f.request = std::move(request);
  f.record.id = f.request->id;
  f.record.prompt_tokens = static_cast<int32_t>(f.request->prompt.size());
  f.record.arrival_us = f.request->arrival_us;
  f.record.slo = f.request->slo;
  f.record.max_tokens = f.request->params.max_tokens;
  f.record.queued_us = now;
  HashPrefix(f);
  flights_.emplace(f.request->id, std::move(owned));
  // FCFS: nobody overtakes a request that is already waiting for a placement. But what can
  // never be placed (no pool could hold it, no node of a role) is refused now, not at the head.
  if (!queue_.empty()) {
    const PlacementDecision decision = policy_->Place(PlacementFor(f, now), PlacementContext{nodes_, {}});
    if (decision.kind == PlacementDecision::Kind::kReject) {
      ++decisions_.rejected;
      flights_.erase(f.record.id);
      return decision.reason;
    }
    if (Status room = ClassQueueRoom(f); !room.ok()) {
      ++decisions_.queue_full;
      flights_.erase(f.record.id);
      return room;
    }
    if (static_cast<int32_t>(queue_.size()) >= options_.max_queued && !ShedForRoom(f, now, out)) {
      ++decisions_.queue_full;
      flights_.erase(f.record.id);
      return ResourceExhaustedError("the router's queue is full (" + std::to_string(options_.max_queued) +
                                    " requests wait for a placement); retry later");
    }
    ++decisions_.queued;
    f.counted_deferral = true;
    Enqueue(f, now);
    return Status::Ok();
  }
  Status refused;
  if (TryPlace(f, now, out, &refused) == Outcome::kFailed) {
    flights_.erase(f.record.id);  // no events follow a refused Submit
    return refused;
  }
  return Status::Ok();
}

RouterCore::Outcome RouterCore::TryPlace(Flight& f, int64_t now, RouterActions* out, Status* refused) {
  const PlacementDecision decision = policy_->Place(PlacementFor(f, now), PlacementContext{nodes_, f.refused});
  switch (decision.kind) {
    case PlacementDecision::Kind::kPlace:
      if (decision.prefill < 0 || decision.decode < 0 || decision.prefill >= static_cast<NodeIndex>(nodes_.size()) ||
          decision.decode >= static_cast<NodeIndex>(nodes_.size())) {
        *refused = InternalError("placement policy " + std::string(policy_->name()) + " chose unknown nodes");
        return Outcome::kFailed;
      }
      ++decisions_.placed;
      Send(f, decision.prefill, decision.decode, now, out);
      return Outcome::kPlaced;
    case PlacementDecision::Kind::kDefer:
      if (Status room = ClassQueueRoom(f); !room.ok()) {
        ++decisions_.queue_full;
        *refused = std::move(room);
        return Outcome::kFailed;
      }
      if (static_cast<int32_t>(queue_.size()) >= options_.max_queued && !ShedForRoom(f, now, out)) {
        ++decisions_.queue_full;
        *refused = ResourceExhaustedError(decision.reason.message() + "; the router's queue is full");
        return Outcome::kFailed;
      }
      if (!f.counted_deferral) ++decisions_.queued;  // the head deferred again is no new deferral
      f.counted_deferral = true;
      Enqueue(f, now);
      return Outcome::kQueued;
    case PlacementDecision::Kind::kReject:
      ++decisions_.rejected;
      break;
  }
  *refused = decision.reason;
  return Outcome::kFailed;
}

void RouterCore::Send(Flight& f, NodeIndex p, NodeIndex d, int64_t now, RouterActions* out) {
  f.phase = Flight::Phase::kPrefilling;
  f.p = p;
  f.d = d;
  ++f.record.decode_attempts;
  f.record.prefill_node = nodes_[p].id;
  f.record.decode_node = nodes_[d].id;
  f.record.placed_us = now;
  // The prompt tokens P computes: its prefix cache may hold the start (KV-aware routing).
  const int64_t uncached = f.record.prompt_tokens - PlacementFor(f, now).CachedTokensOn(nodes_[p]);
  AddPlacedWork(f, uncached);
  nodes_[p].charged_tokens += static_cast<uint64_t>(uncached);
  if (nodes_[d].block_size_tokens > 0) {
    f.charged_blocks = BlocksNeeded(PlacementFor(f, now), nodes_[d]);
    nodes_[d].charged_blocks += f.charged_blocks;
    if (f.charged_blocks > 0) nodes_[d].charged_ids.push_back(f.record.id);
  }
  const int64_t deadline =
      options_.first_token_timeout_us > 0 ? f.record.arrival_us + options_.first_token_timeout_us : 0;
  out->push_back(SendPrefill{p, d, f.request, deadline});
}

void RouterCore::HashPrefix(Flight& f) const {
  if (!options_.kv_aware_routing) return;
  // The block size of the caches reported so far (one model: one size). No cache, no hashing.
  for (const NodeView& n : nodes_) {
    if (n.cache_block_size == 0) continue;
    const int32_t bs = static_cast<int32_t>(n.cache_block_size);
    const std::vector<int32_t>& prompt = f.request->prompt;
    f.prefix_block_size = n.cache_block_size;
    // Never the block of the last token: it is always computed (its logits give the first token).
    f.prefix_hashes =
        ChainBlockHashes(PrefixRoot(f.request->cache_salt), prompt, bs, (static_cast<int32_t>(prompt.size()) - 1) / bs);
    return;
  }
}

PlacementRequest RouterCore::PlacementFor(const Flight& f, int64_t now) const {
  PlacementRequest r{f.record.prompt_tokens, f.request->params.max_tokens, f.request->slo, f.record.arrival_us,
                     now - f.record.arrival_us};
  r.prefix_hashes = f.prefix_hashes;
  r.prefix_block_size = f.prefix_block_size;
  return r;
}

void RouterCore::AddPlacedWork(Flight& f, int64_t prefill_tokens) {
  const int64_t l = f.record.prompt_tokens;
  PlacedWork& p = nodes_[f.p].placed;
  f.placed_prefill_entry =
      p.prefill_queue.emplace(TtftDeadlineUs(f.record.arrival_us, f.request->slo.ttft_ms), prefill_tokens);
  f.placed_prefill = true;
  PlacedWork& d = nodes_[f.d].placed;
  ++d.decode_requests;
  d.decode_context_tokens += l;
  if (f.request->slo.tpot_ms > 0) d.tpot_targets_ms.insert(f.request->slo.tpot_ms);
  f.placed_context = l;
  f.placed_decode = true;
}

void RouterCore::ReleasePlacedWork(Flight& f, bool decode_too) {
  if (f.placed_prefill && f.p >= 0) nodes_[f.p].placed.prefill_queue.erase(f.placed_prefill_entry);
  f.placed_prefill = false;
  if (!decode_too) return;
  if (f.placed_decode && f.d >= 0) {
    PlacedWork& d = nodes_[f.d].placed;
    --d.decode_requests;
    d.decode_context_tokens -= f.placed_context;
    if (f.request->slo.tpot_ms > 0) {
      auto it = d.tpot_targets_ms.find(f.request->slo.tpot_ms);
      if (it != d.tpot_targets_ms.end()) d.tpot_targets_ms.erase(it);
    }
  }
  f.placed_decode = false;
  f.placed_context = 0;
}

void RouterCore::Enqueue(Flight& f, int64_t now) {
  ReleasePlacedWork(f, /*decode_too=*/true);
  f.phase = Flight::Phase::kQueued;
  f.p = f.d = -1;
  // In arrival order: a request sent back by a refusal keeps its place.
  auto pos = std::find_if(queue_.begin(), queue_.end(),
                          [&](int64_t id) { return flights_.at(id)->record.arrival_us > f.record.arrival_us; });
  queue_.insert(pos, f.record.id);
  ++queued_by_class_[f.request->slo.class_name];
}

void RouterCore::Dequeue(const Flight& f) {
  // A flight DrainQueue has taken off already is not there (erasing end() would drop another).
  auto pos = std::find(queue_.begin(), queue_.end(), f.record.id);
  if (pos == queue_.end()) return;
  queue_.erase(pos);
  auto it = queued_by_class_.find(f.request->slo.class_name);
  if (it != queued_by_class_.end() && --it->second <= 0) queued_by_class_.erase(it);
}

Status RouterCore::ClassQueueRoom(const Flight& f) const {
  const RequestSlo& slo = f.request->slo;
  if (slo.max_queued < 0 || num_queued_in_class(slo.class_name) < slo.max_queued) return Status::Ok();
  return UnavailableError("the router's queue for SLO class " + slo.class_name + " is full (" +
                          std::to_string(slo.max_queued) + " requests wait for a placement); retry later")
      .WithReason("queue_full");
}

int32_t RouterCore::num_queued_in_class(const std::string& class_name) const {
  auto it = queued_by_class_.find(class_name);
  return it == queued_by_class_.end() ? 0 : it->second;
}

bool RouterCore::ShedForRoom(const Flight& f, int64_t now, RouterActions* out) {
  int64_t victim = -1;
  const Flight* least = nullptr;
  for (int64_t id : queue_) {  // arrival order: a later one wins ties
    const Flight& q = *flights_.at(id);
    if (least == nullptr || q.request->slo.priority >= least->request->slo.priority) {
      least = &q;
      victim = id;
    }
  }
  if (least == nullptr || least->request->slo.priority <= f.request->slo.priority) return false;
  ++decisions_.shed;
  Finish(victim, FinishReason::kError,
         ResourceExhaustedError("shed: the router's queue is full and a request of a more important SLO class "
                                "arrived; retry later"),
         {}, kAbortNone, now, out);
  return true;
}

void RouterCore::DrainQueue(int64_t now, RouterActions* out) {
  while (!queue_.empty()) {
    const int64_t id = queue_.front();
    Flight& f = *flights_.at(id);
    Dequeue(f);  // the front: found at once
    Status refused;
    const Outcome outcome = TryPlace(f, now, out, &refused);
    if (outcome == Outcome::kQueued) {
      // Still nothing for the head: FCFS, the rest wait too. It goes back to the front (Enqueue
      // put it after the requests that share its arrival stamp).
      queue_.erase(std::find(queue_.begin(), queue_.end(), id));
      queue_.push_front(id);
      return;
    }
    if (outcome == Outcome::kFailed) Finish(id, FinishReason::kError, refused, {}, kAbortNone, now, out);
  }
}

void RouterCore::Uncharge(Flight& f) {
  if (f.charged_blocks > 0 && f.d >= 0) {
    NodeView& d = nodes_[f.d];
    d.charged_blocks -= std::min(d.charged_blocks, f.charged_blocks);
  }
  f.charged_blocks = 0;
}

void RouterCore::Emit(Flight& f, const std::vector<int32_t>& tokens, int64_t now, RouterActions* out) {
  if (f.placed_decode) {
    nodes_[f.d].placed.decode_context_tokens += static_cast<int64_t>(tokens.size());
    f.placed_context += static_cast<int64_t>(tokens.size());
  }
  for (size_t i = 0; i < tokens.size(); ++i) f.record.AddToken(now, options_.token_times);
  f.last_token_us = now;
  if (!options_.token_events) return;
  InferenceEvent ev;
  ev.request_id = f.record.id;
  ev.emitted_us = now;
  ev.tokens = tokens;
  out->push_back(DeliverEvent{std::move(ev)});
}

void RouterCore::Finish(int64_t request_id, FinishReason reason, Status status, std::vector<int32_t> tokens,
                        NodeIndex except, int64_t now, RouterActions* out) {
  auto it = flights_.find(request_id);
  if (it == flights_.end()) return;
  std::unique_ptr<Flight> f = std::move(it->second);
  flights_.erase(it);
  if (f->phase == Flight::Phase::kQueued) Dequeue(*f);
  Uncharge(*f);
  ReleasePlacedWork(*f, /*decode_too=*/true);
  // The one abort-target rule: every node the request was placed on may hold something of it (a
  // queued prompt, a reservation, a transfer, a running sequence), and Abort is idempotent
  // there; but not the node that ended it, and none when nothing can be held (`except` ==
  // kAbortNone).
  if (except != kAbortNone) {
    const std::string why = reason == FinishReason::kAbort  ? "aborted by the client"
                            : reason == FinishReason::kStop ? "stopped by the front end"
                                                            : status.ToString();
    for (NodeIndex n : {f->p, f->d}) {
      if (n < 0 || n == except) continue;
      out->push_back(SendAbort{n, request_id, why});
      if (f->p == f->d) break;  // colocated: one node, one Abort
    }
  }
  for (size_t i = 0; i < tokens.size(); ++i) f->record.AddToken(now, options_.token_times);
  f->record.finish_us = now;
  f->record.finish_reason = reason;
  f->record.status = reason == FinishReason::kError ? status : Status::Ok();
  InferenceEvent ev;
  ev.request_id = request_id;
  ev.emitted_us = now;
  ev.tokens = std::move(tokens);
  ev.finish_reason = reason;
  ev.status = f->record.status;
  ev.record = std::move(f->record);
  out->push_back(DeliverEvent{std::move(ev)});
}

void RouterCore::Abort(int64_t request_id, FinishReason as, int64_t now, RouterActions* out) {
  if (!flights_.count(request_id)) return;
  Finish(request_id, as == FinishReason::kStop ? FinishReason::kStop : FinishReason::kAbort, Status::Ok(), {},
         kAbortAll, now, out);
  DrainQueue(now, out);
}

void RouterCore::Fail(int64_t request_id, const Status& why, int64_t now, RouterActions* out) {
  if (!flights_.count(request_id)) return;
  Finish(request_id, FinishReason::kError, why.ok() ? InternalError("request failed") : why, {}, kAbortAll, now, out);
  DrainQueue(now, out);
}

void RouterCore::Tick(int64_t now, RouterActions* out) {
  std::vector<std::pair<int64_t, Status>> late;
  for (const auto& [id, f] : flights_) {
    if (f->phase != Flight::Phase::kDecoding) {
      if (options_.first_token_timeout_us > 0 && now - f->record.arrival_us > options_.first_token_timeout_us) {
        late.emplace_back(id, DeadlineExceededError(
                                  "no first token after " + std::to_string(options_.first_token_timeout_us / 1000) +
                                  " ms" + (f->phase == Flight::Phase::kQueued ? " (waiting for a placement)" : "")));
      }
    } else if (options_.inter_token_timeout_us > 0 && now - f->last_token_us > options_.inter_token_timeout_us) {
      late.emplace_back(id, DeadlineExceededError("no token from decode node " + nodes_[f->d].id + " for " +
                                                  std::to_string(options_.inter_token_timeout_us / 1000) + " ms"));
    }
  }
  decisions_.timed_out += static_cast<int64_t>(late.size());
  for (auto& [id, why] : late) Finish(id, FinishReason::kError, why, {}, kAbortAll, now, out);
  DrainQueue(now, out);
}

int64_t RouterCore::next_deadline_us() const {
  int64_t next = 0;
  const auto consider = [&next](int64_t t) {
    if (t > 0 && (next == 0 || t < next)) next = t;
  };
  for (const auto& [id, f] : flights_) {
    if (f->phase != Flight::Phase::kDecoding) {
      if (options_.first_token_timeout_us > 0) consider(f->record.arrival_us + options_.first_token_timeout_us + 1);
    } else if (options_.inter_token_timeout_us > 0) {
      consider(f->last_token_us + options_.inter_token_timeout_us + 1);
    }
  }
  return next;
}

void RouterCore::Shutdown(int64_t now, RouterActions* out) {
  shutting_down_ = true;
  std::vector<int64_t> ids;
  for (const auto& [id, f] : flights_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (int64_t id : ids)
    Finish(id, FinishReason::kError, UnavailableError("the router is shutting down"), {}, kAbortAll, now, out);
}

void RouterCore::OnFirstToken(NodeIndex node, int64_t request_id, const FirstTokenReport& report, int64_t now,
                              RouterActions* out) {
  auto it = flights_.find(request_id);
  if (it == flights_.end()) return;
  Flight& f = *it->second;
  if (f.p != node || f.phase != Flight::Phase::kPrefilling) return;
  f.phase = Flight::Phase::kDecoding;          // D's blocks stay charged until its next report counts them
  ReleasePlacedWork(f, /*decode_too=*/false);  // P is done with it
  f.record.prefill_start_us = report.prefill_start_us;
  f.record.prefill_end_us = report.prefill_end_us;
  f.record.cached_tokens = report.cached_tokens;
  if (report.finished) {
    // P releases D's reservation if it made one; say it too, in case P fails before it does.
    Finish(request_id, report.finish_reason == FinishReason::kNone ? FinishReason::kStop : report.finish_reason,
           Status::Ok(), {report.token}, f.p, now, out);
    DrainQueue(now, out);
    return;
  }
  Emit(f, {report.token}, now, out);
  ReplayHeld(request_id, now, out);
}

void RouterCore::ReplayHeld(int64_t request_id, int64_t now, RouterActions* out) {
  auto it = flights_.find(request_id);
  if (it == flights_.end()) return;
  std::vector<std::pair<NodeIndex, TokensReport>> held = std::move(it->second->held);
  it->second->held.clear();
  for (auto& [node, report] : held) OnTokens(node, request_id, report, now, out);
}

void RouterCore::OnTokens(NodeIndex node, int64_t request_id, const TokensReport& report, int64_t now,
                          RouterActions* out) {
  auto it = flights_.find(request_id);
  if (it == flights_.end()) return;
  Flight& f = *it->second;
  if (f.d != node || f.phase == Flight::Phase::kQueued) return;
  if (f.phase == Flight::Phase::kPrefilling) {
    f.held.emplace_back(node, report);  // overtook the FirstToken
    return;
  }
  if (report.decode_admitted_us != 0) f.record.decode_admitted_us = report.decode_admitted_us;
  if (report.transfer.bytes > 0 && !f.kv_ready) {  // P's own KvReady copy has not come yet
    f.record.kv_bytes = report.transfer.bytes;
    f.record.transfer_start_us = report.transfer.start_us;
    f.record.transfer_end_us = report.transfer.end_us;
  }
  if (report.finished) {
    f.record.preemptions = report.preemptions;
    const FinishReason reason =
        report.finish_reason == FinishReason::kNone ? FinishReason::kStop : report.finish_reason;
    Finish(request_id, reason,
           reason == FinishReason::kError ? InternalError("the decode node failed the request") : Status::Ok(),
           report.tokens, kAbortNone, now, out);
    DrainQueue(now, out);
    return;
  }
  Emit(f, report.tokens, now, out);
}

void RouterCore::OnKvReady(NodeIndex node, int64_t request_id, const TransferReport& report) {
  auto it = flights_.find(request_id);
  if (it == flights_.end() || it->second->p != node) return;
  Flight& f = *it->second;
  f.kv_ready = true;
  f.record.kv_bytes = report.bytes;
  f.record.transfer_start_us = report.start_us;
  f.record.transfer_end_us = report.end_us;
}

void RouterCore::OnReservationRefused(NodeIndex node, int64_t request_id, const std::string& decode_node,
                                      const std::string& reason, int64_t now, RouterActions* out) {
  auto it = flights_.find(request_id);
  if (it == flights_.end()) return;
  Flight& f = *it->second;
  if (f.p != node || f.phase != Flight::Phase::kPrefilling) return;
  const NodeIndex d = FindNode(decode_node);
  ++decisions_.reservation_refused;
  Uncharge(f);
  ReleasePlacedWork(f, /*decode_too=*/true);
  f.refused.push_back(d >= 0 ? d : f.d);
  f.last_refusal = decode_node + ": " + reason;
  bool others = false;
  for (NodeIndex i = 0; i < static_cast<NodeIndex>(nodes_.size()); ++i) {
    others = others || (nodes_[i].healthy() && nodes_[i].can_decode() &&
                        std::find(f.refused.begin(), f.refused.end(), i) == f.refused.end());
  }
  if (!others || f.record.decode_attempts >= options_.max_decode_attempts) {
    // P dropped it and D refused it: neither holds anything.
    Finish(request_id, FinishReason::kError,
           ResourceExhaustedError("no decode node could reserve KV for the request (" +
                                  std::to_string(f.refused.size()) + " refused; last: " + f.last_refusal + ")"),
           {}, kAbortNone, now, out);
    DrainQueue(now, out);
    return;
  }
  Status refused;
  if (TryPlace(f, now, out, &refused) == Outcome::kFailed) {
    Finish(request_id, FinishReason::kError, refused, {}, kAbortNone, now, out);
  }
}

void RouterCore::OnNodeError(NodeIndex node, int64_t request_id, const Status& status, int64_t now,
                             RouterActions* out) {
  auto it = flights_.find(request_id);
  if (it == flights_.end()) return;
  const Flight& f = *it->second;
  if (f.p != node && f.d != node) return;
  Finish(request_id, FinishReason::kError, status.ok() ? InternalError("node error without a code") : status, {}, node,
         now, out);
  DrainQueue(now, out);
}

}  // namespace tandem
