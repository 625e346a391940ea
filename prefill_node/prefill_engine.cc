#include "prefill_node/prefill_engine.h"

#include <algorithm>
#include <string>

#include "common/logging.h"
#include "node/node_runtime.h"

namespace tandem {

namespace {

// The prefill role checks what the model can take; the pool check is the Scheduler's (a prefill
// node holds the prompt only, not prompt + max_tokens).
RequestLimits PrefillLimits(const ModelConfig& config) {
  RequestLimits l = RequestLimits::ForModel(config);
  l.require_seed = true;
  return l;
}

// Requests wait for their blocks in the scheduler, not for sequence slots: the budget bounds a step.
constexpr int32_t kUnboundedSeqs = 1 << 20;

}  // namespace

struct PrefillEngine::Active {
  enum class Reservation { kNone, kRequested, kGranted };
  PrefillJob job;
  int64_t key = 0;
  Reservation reservation = Reservation::kNone;
  std::vector<int> decode_blocks;    // the granted reservation
  int32_t decode_cached_blocks = 0;  // its leading blocks that hold our KV already (not sent)
  // After the hand-off (prompt complete or step failed): P's blocks, held until the session ends.
  bool handed_off = false;
  std::vector<int32_t> blocks;
  std::unique_ptr<KvSendSession> session;
  bool aborted_locally = false;   // finished at the first token, failed, or aborted by the router
  bool failure_reported = false;  // the router heard that its transfer failed
  int32_t first_token = -1;
  bool first_token_held = false;  // sampled before D's reservation came: goes out with it
  PrefillEvent held_first;
  int64_t prefill_start_us = 0;
  int32_t cached_tokens = 0;
  int64_t prefill_end_us = 0;
  int64_t transfer_start_us = 0;

  bool needs_decode() const { return job.params.max_tokens > 1; }
};

namespace {

SchedulerOptions PrefillSchedulerOptions(const PrefillEngineOptions& options) {
  // Earliest TTFT deadline first: an interactive request does not wait behind a queue of batch
  // prompts (FCFS when no request carries a target).
  SchedulerOptions s{EngineRole::kPrefill, kUnboundedSeqs, options.max_num_batched_tokens, options.queue_order};
  s.enable_prefix_caching = options.enable_prefix_caching;
  return s;
}

}  // namespace

PrefillEngine::PrefillEngine(Transformer& transformer, KvCache& cache, Transport& transport,
                             PrefillEngineOptions options, const Clock& clock)
    : executor_(transformer, cache),
      cache_(cache),
      transport_(transport),
      options_(options),
      clock_(clock),
      scheduler_(cache.pool(), cache.block_size(), PrefillLimits(transformer.config()),
                 transformer.config().eos_token_ids, PrefillSchedulerOptions(options)),
      layout_(LayoutOf(cache, transformer.config())) {}

PrefillEngine::~PrefillEngine() {
  // Sessions abort themselves in their destructors; blocks go back with the cache.
  for (auto& [key, a] : active_) {
    if (a->session && !IsTerminal(a->session->state())) {
      (void)a->session->Abort(AbortedError("prefill engine shut down"), SessionClock::now());
    }
  }
}

PrefillEngine::Active* PrefillEngine::FindActive(const std::string& id) {
  auto k = keys_.find(id);
  if (k == keys_.end()) return nullptr;
  auto it = active_.find(k->second);
  return it == active_.end() ? nullptr : it->second.get();
}

void PrefillEngine::Erase(int64_t key) {
  auto it = active_.find(key);
  if (it == active_.end()) return;
  if (it->second->handed_off) --num_transferring_;
  keys_.erase(it->second->job.id);
  active_.erase(it);
}

void PrefillEngine::SetDecodePeer(const std::string& node, PeerId peer, int pool_num_blocks) {
  peers_[node] = DecodePeer{peer, pool_num_blocks};
}

void PrefillEngine::RemoveDecodePeer(const std::string& node, std::vector<PrefillEvent>* events) {
  peers_.erase(node);
  const Status gone = UnavailableError("decode node " + node + " is down");
  std::vector<int64_t> queued;
  for (auto& [key, a] : active_) {
    if (a->job.decode_node != node || !a->needs_decode()) continue;
    if (!a->handed_off) {
      queued.push_back(key);
    } else if (a->session && !IsTerminal(a->session->state())) {
      Handle(*a, a->session->Abort(gone, SessionClock::now()), events);
    }
  }
  for (int64_t key : queued) {
    Active& a = *active_.at(key);
    PrefillEvent e = MakeEvent(a, PrefillEventKind::kError);
    e.error = gone;
    events->push_back(std::move(e));
    scheduler_.Abort(key, clock_.NowMicros()).IgnoreError();  // frees its blocks: no session reads them
    Erase(key);
  }
}

Status PrefillEngine::Add(PrefillJob job) {
  if (job.id.empty()) return InvalidArgumentError("request id is empty");
  const std::string who = "request " + job.id + ": ";
  if (job.params.max_tokens > 1 && !peers_.count(job.decode_node)) {
    // The router placed it on a pair whose link just dropped: not the request's fault, and another
    // pair may serve it (the service answers it as a refused reservation).
    return UnavailableError("decode node '" + job.decode_node + "' is not connected to this prefill node")
        .WithReason(kDecodeUnreachable);
  }
  if (keys_.count(job.id)) return AlreadyExistsError(who + "already queued");
  const int64_t now = clock_.NowMicros();
  auto a = std::make_unique<Active>();
  a->key = next_key_++;
  Request r;
  r.id = a->key;
  r.prompt = job.prompt;
  r.params = job.params;
  r.cache_salt = job.cache_salt;
  r.record.arrival_us = job.arrival_us != 0 ? job.arrival_us : now;
  r.record.slo = job.slo;
  if (job.arrival_us == 0) job.arrival_us = now;
  a->job = std::move(job);
  RETURN_IF_ERROR(scheduler_.Add(std::move(r), now).WithContext(who));
  keys_[a->job.id] = a->key;
  active_[a->key] = std::move(a);
  return Status::Ok();
}

void PrefillEngine::ReleaseReservation(Active& a, std::vector<PrefillEvent>* events) {
  if (a.reservation != Active::Reservation::kNone) events->push_back(MakeEvent(a, PrefillEventKind::kAbortDecode));
  a.reservation = Active::Reservation::kNone;
}

void PrefillEngine::OnReservation(const std::string& decode_node, const std::string& id, bool ok,
                                  const std::vector<int>& block_ids, const std::string& reason,
                                  std::vector<PrefillEvent>* events, int32_t cached_blocks) {
  Active* a = FindActive(id);
  if (a == nullptr || a->job.decode_node != decode_node || a->reservation != Active::Reservation::kRequested) {
    // It ended (aborted, expired, failed, finished at its first token) while the decode node was
    // reserving: give those blocks back. Abort is idempotent there.
    if (ok) {
      PrefillEvent e;
      e.kind = PrefillEventKind::kAbortDecode;
      e.request_id = id;
      e.decode_node = decode_node;
      events->push_back(std::move(e));
    }
    return;
  }
  const int32_t prompt_blocks = BlocksForTokens(static_cast<int64_t>(a->job.prompt.size()), cache_.block_size());
  if (!ok || static_cast<int32_t>(block_ids.size()) < prompt_blocks) {
    if (ok) ReleaseReservation(*a, events);  // too few blocks to be of use: a broken peer
    Refused(*a,
            !ok ? reason
                : "reserved " + std::to_string(block_ids.size()) + " blocks; the prompt needs " +
                      std::to_string(prompt_blocks),
            events);
    return;
  }
  a->reservation = Active::Reservation::kGranted;
  a->decode_blocks = block_ids;
  // Never all of them: the decode node keeps the last prompt block for us to send.
  a->decode_cached_blocks = std::clamp(cached_blocks, 0, prompt_blocks - 1);
  if (a->session) Reserved(*a, events);
}

void PrefillEngine::PostReservation(std::string decode_node, std::string id, bool ok, std::vector<int> block_ids,
                                    std::string reason, int32_t cached_blocks) {
  std::lock_guard<std::mutex> lock(mailbox_mu_);
  mailbox_.push_back(
      {std::move(decode_node), std::move(id), ok, std::move(block_ids), std::move(reason), cached_blocks});
}

void PrefillEngine::DrainReservations(std::vector<PrefillEvent>* events) {
  std::vector<PostedReservation> posted;
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    posted.swap(mailbox_);
  }
  for (PostedReservation& r : posted) {
    OnReservation(r.decode_node, r.id, r.ok, r.block_ids, r.reason, events, r.cached_blocks);
  }
}

void PrefillEngine::DrainGrants(std::vector<PrefillEvent>* events) {
  // Mid-forward only what starts a transfer of this step is safe to apply: a usable grant for a
  // request whose session awaits it. Anything else (a refusal, a grant for a request that ended
  // or is still queued) could end a request the forward pass is computing: it waits.
  std::vector<PostedReservation> grants;
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    auto later = std::stable_partition(mailbox_.begin(), mailbox_.end(), [this](const PostedReservation& r) {
      Active* a = FindActive(r.id);
      return r.ok && a != nullptr && a->session && a->job.decode_node == r.decode_node &&
             a->reservation == Active::Reservation::kRequested &&
             static_cast<int64_t>(r.block_ids.size()) >=
                 BlocksForTokens(static_cast<int64_t>(a->job.prompt.size()), cache_.block_size());
    });
    grants.assign(std::make_move_iterator(mailbox_.begin()), std::make_move_iterator(later));
    mailbox_.erase(mailbox_.begin(), later);
  }
  for (PostedReservation& r : grants) {
    OnReservation(r.decode_node, r.id, true, r.block_ids, r.reason, events, r.cached_blocks);
  }
}

void PrefillEngine::Reserved(Active& a, std::vector<PrefillEvent>* events) {
  if (!a.session || a.session->state() != SendState::kAwaitingReservation) return;
  auto peer = peers_.find(a.job.decode_node);
  if (peer == peers_.end()) return;  // lost: RemoveDecodePeer ends the session
  KvReservation r;
  r.request_id = static_cast<uint64_t>(a.key);
  r.layout_hash = layout_.compatibility_hash();
  r.pool_num_blocks = peer->second.pool_num_blocks;
  const size_t prompt_blocks =
      static_cast<size_t>(BlocksForTokens(static_cast<int64_t>(a.job.prompt.size()), cache_.block_size()));
  r.block_ids.assign(a.decode_blocks.begin(),
                     a.decode_blocks.begin() + static_cast<long>(std::min(a.decode_blocks.size(), prompt_blocks)));
  r.skip_blocks = a.decode_cached_blocks;
  a.transfer_start_us = clock_.NowMicros();
  Handle(a, a.session->OnReservation(r, peer->second.peer, SessionClock::now()), events);
  if (a.first_token_held && !IsTerminal(a.session->state()) && a.session->state() != SendState::kDraining) {
    a.first_token_held = false;
    events->push_back(std::move(a.held_first));
  }
}

void PrefillEngine::Refused(Active& a, const std::string& reason, std::vector<PrefillEvent>* events) {
  PrefillEvent e = MakeEvent(a, PrefillEventKind::kRefused);
  e.reason = reason;
  events->push_back(std::move(e));
  a.reservation = Active::Reservation::kNone;
  a.aborted_locally = true;
  a.first_token_held = false;  // nothing was streamed: the router places it again
  if (!a.handed_off) {
    scheduler_.Abort(a.key, clock_.NowMicros()).IgnoreError();
    Erase(a.key);
    return;
  }
  if (a.session && !IsTerminal(a.session->state())) {
    Handle(a, a.session->Abort(AbortedError("the decode node refused the reservation"), SessionClock::now()), events);
  }
  if (!a.session || IsTerminal(a.session->state())) {  // nothing was posted: free at once
    FreeBlocks(a);
    Erase(a.key);
  }
}

void PrefillEngine::Abort(const std::string& id, std::vector<PrefillEvent>* events) {
  Active* a = FindActive(id);
  if (a == nullptr) return;
  a->aborted_locally = true;
  if (!a->handed_off) {
    scheduler_.Abort(a->key, clock_.NowMicros()).IgnoreError();  // frees its blocks: nothing reads them
    // Nothing was written to the decode node yet: our Abort lets it free the reservation at once.
    ReleaseReservation(*a, events);
    Erase(a->key);
    return;
  }
  if (a->reservation == Active::Reservation::kRequested) ReleaseReservation(*a, events);
  if (a->session && !IsTerminal(a->session->state())) {
    Handle(*a, a->session->Abort(AbortedError("aborted by the router"), SessionClock::now()), events);
  }
}

void PrefillEngine::ExpireDeadlines(int64_t now, std::vector<PrefillEvent>* events) {
  std::vector<int64_t> late;
  for (const auto& [key, a] : active_) {
    if (!a->handed_off && a->job.deadline_us != 0 && now > a->job.deadline_us) late.push_back(key);
  }
  for (int64_t key : late) {
    Active& a = *active_.at(key);
    PrefillEvent e = MakeEvent(a, PrefillEventKind::kError);
    e.error = DeadlineExceededError("request " + a.job.id + ": its deadline passed while it waited for prefill");
    events->push_back(std::move(e));
    scheduler_.Abort(key, now).IgnoreError();
    ReleaseReservation(a, events);
    Erase(key);
  }
}

void PrefillEngine::AskReservations(std::vector<PrefillEvent>* events) {
  const int64_t lookahead =
      options_.reserve_lookahead_tokens > 0 ? options_.reserve_lookahead_tokens : options_.max_num_batched_tokens;
  int64_t ahead = 0;
  for (Request* r : scheduler_.PendingPrompts()) {
    const int64_t until_last = ahead + r->remaining_prefill();
    if (until_last > lookahead) break;
    ahead = until_last;
    Ask(*active_.at(r->id), events);
  }
}

void PrefillEngine::Ask(Active& a, std::vector<PrefillEvent>* events) {
  if (!a.needs_decode() || a.reservation != Active::Reservation::kNone || a.aborted_locally) return;
  a.reservation = Active::Reservation::kRequested;
  PrefillEvent e = MakeEvent(a, PrefillEventKind::kReserve);
  e.prompt = a.job.prompt;
  e.params = a.job.params;
  e.tpot_target_ms = a.job.slo.tpot_ms;
  e.slo_priority = a.job.slo.priority;
  e.cache_salt = a.job.cache_salt;
  e.router_id = a.job.router_id;
  events->push_back(std::move(e));
}

bool PrefillEngine::Step(std::vector<PrefillEvent>* events) {
  const int64_t now = clock_.NowMicros();
  DrainReservations(events);
  ExpireDeadlines(now, events);
  AskReservations(events);
  const StepPlan plan = scheduler_.Schedule(now);
  if (plan.empty()) {
    Poll(events);
    return false;
  }
  last_step_shape_ = ShapeOf(plan);
  std::vector<Active*> sending = StartSessions(plan, events);
  if (early_ && !events->empty()) early_(*events);  // the ReserveKv round trips run during the pass
  const Status run = executor_.Execute(plan, &result_, [&](int layer) {
    // A reservation that came during the forward pass starts its transfer now, with the layers
    // computed so far. Only grants: a refusal ends a request, which must wait for the step's end.
    DrainGrants(events);
    const auto t = SessionClock::now();
    for (Active* a : sending) Handle(*a, a->session->OnLayerComputed(layer, t), events);
  });
  if (run.ok()) {
    scheduler_.Postprocess(clock_.NowMicros(), plan, result_);
  } else {
    GetLogger("prefill")->error("prefill step failed; failing its {} request(s): {}", plan.chunks.size(),
                                run.ToString());
    scheduler_.FailStep(clock_.NowMicros(), plan, run.WithContext("prefill step failed"));
  }
  for (std::unique_ptr<Request>& r : scheduler_.TakeHandedOff()) HandOff(std::move(r), events);
  Poll(events);
  return true;
}

std::vector<PrefillEngine::Active*> PrefillEngine::StartSessions(const StepPlan& plan,
                                                                 std::vector<PrefillEvent>* events) {
  std::vector<Active*> sending;
  const auto t0 = SessionClock::now();
  for (const ScheduledChunk& c : plan.chunks) {
    Active& a = *active_.at(c.request->id);
    if (!c.want_logits || !a.needs_decode() || !peers_.count(a.job.decode_node)) continue;
    Ask(a, events);  // normally asked already, within the lookahead
    std::vector<int> src(c.request->block_table.begin(), c.request->block_table.end());
    a.session = std::make_unique<KvSendSession>(
        a.key, transport_, layout_, std::move(src), [](std::span<const int>) {}, t0, options_.session);
    if (a.reservation == Active::Reservation::kGranted) Reserved(a, events);
    sending.push_back(&a);
  }
  return sending;
}

void PrefillEngine::HandOff(std::unique_ptr<Request> r, std::vector<PrefillEvent>* events) {
  Active& a = *active_.at(r->id);
  a.handed_off = true;
  ++num_transferring_;
  a.blocks = std::move(r->block_table);
  a.prefill_start_us = r->record.prefill_start_us;
  a.cached_tokens = r->record.cached_tokens;
  a.prefill_end_us = r->record.prefill_end_us;
  const auto end_transfer = [&](const Status& why) {
    a.aborted_locally = true;
    // A reservation asked for and not answered yet: D frees it when our Abort follows the
    // ReserveKv (same connection, in order); a late grant is answered with an Abort too.
    if (a.reservation == Active::Reservation::kRequested) ReleaseReservation(a, events);
    if (a.session && !IsTerminal(a.session->state())) {
      Handle(a, a.session->Abort(why, SessionClock::now()), events);
    } else if (!a.session) {
      ReleaseReservation(a, events);  // nothing was posted: D may free at once
    }
  };
  if (r->finish_reason == FinishReason::kError) {
    PrefillEvent e = MakeEvent(a, PrefillEventKind::kError);
    e.error = r->status;
    events->push_back(std::move(e));
    end_transfer(r->status);
    return;
  }
  a.first_token = r->output.front();
  PrefillEvent e = MakeEvent(a, PrefillEventKind::kFirstToken);
  e.finished = r->finished();
  e.finish_reason = r->finish_reason;
  if (e.finished) {
    events->push_back(std::move(e));
    end_transfer(AbortedError("finished at the first token"));
  } else if (!a.session) {
    events->push_back(std::move(e));
    PrefillEvent err = MakeEvent(a, PrefillEventKind::kError);
    err.error = UnavailableError("decode node " + a.job.decode_node + " went down before the transfer");
    events->push_back(std::move(err));
    a.aborted_locally = true;
  } else if (a.session->state() == SendState::kAwaitingReservation) {
    a.first_token_held = true;  // goes out with D's reservation, so a refusal is still clean
    a.held_first = std::move(e);
  } else if (!IsTerminal(a.session->state()) && a.session->state() != SendState::kDraining) {
    events->push_back(std::move(e));
  }
}

PrefillEvent PrefillEngine::MakeEvent(const Active& a, PrefillEventKind kind) const {
  PrefillEvent e;
  e.kind = kind;
  e.request_id = a.job.id;
  e.decode_node = a.job.decode_node;
  e.token = a.first_token;
  e.num_prompt_tokens = static_cast<uint32_t>(a.job.prompt.size());
  e.arrival_us = a.job.arrival_us;
  e.prefill_start_us = a.prefill_start_us;
  e.cached_tokens = a.cached_tokens;
  e.prefill_end_us = a.prefill_end_us;
  return e;
}

void PrefillEngine::Handle(Active& a, SessionAction action, std::vector<PrefillEvent>* events) {
  const auto now = SessionClock::now();
  if (action == SessionAction::kSendKvReady) {
    PrefillEvent e = MakeEvent(a, PrefillEventKind::kKvReady);
    e.bytes = a.session->ready_notice().bytes;
    e.transfer_start_us = a.transfer_start_us;
    e.transfer_end_us = clock_.NowMicros();
    events->push_back(std::move(e));
    a.session->MarkNotified(now);
  } else if (action == SessionAction::kSendAbort) {
    events->push_back(MakeEvent(a, PrefillEventKind::kAbortDecode));
    a.reservation = Active::Reservation::kNone;
  }
  // A session that ended without delivering the KV (failed, timed out, aborted because D went
  // away), also one that never got its reservation: the router hears it once, whatever the path.
  if (a.session && IsTerminal(a.session->state()) && a.session->state() != SendState::kDone && !a.aborted_locally &&
      !a.failure_reported) {
    a.failure_reported = true;
    a.first_token_held = false;
    if (a.reservation == Active::Reservation::kRequested) ReleaseReservation(a, events);  // asked, never applied
    PrefillEvent e = MakeEvent(a, PrefillEventKind::kError);
    e.error = a.session->status().ok() ? AbortedError("transfer aborted") : a.session->status();
    events->push_back(std::move(e));
  }
}

void PrefillEngine::FreeBlocks(Active& a) {
  if (a.blocks.empty()) return;
  Status s = cache_.pool().Free(a.blocks);
  if (!s.ok()) GetLogger("prefill")->error("request {}: freeing blocks: {}", a.job.id, s.ToString());
  a.blocks.clear();
}

void PrefillEngine::Poll(std::vector<PrefillEvent>* events) {
  const auto now = SessionClock::now();
  std::vector<int64_t> done;
  for (auto& [key, a] : active_) {
    if (!a->handed_off) continue;
    if (a->session && !IsTerminal(a->session->state())) Handle(*a, a->session->Poll(now), events);
    if (a->session && !IsTerminal(a->session->state())) continue;
    FreeBlocks(*a);  // the session is over (or never started): no PUT reads them any more
    done.push_back(key);
  }
  for (int64_t key : done) Erase(key);
}

}  // namespace tandem
