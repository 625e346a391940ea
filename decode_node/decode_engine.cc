#include "decode_node/decode_engine.h"

#include <string>

#include "common/logging.h"
#include "node/node_runtime.h"

namespace tandem {

DecodeEngine::DecodeEngine(Transformer& transformer, KvCache& cache, DecodeEngineOptions options, const Clock& clock)
    : transformer_(transformer),
      cache_(cache),
      options_(options),
      clock_(clock),
      layout_(LayoutOf(cache, transformer.config())),
      engine_(transformer, cache,
              EngineOptions{options.max_num_seqs, std::max(options.max_num_seqs, options.max_num_batched_tokens),
                            options.step_time_us, options.kv_allocation, options.enable_prefix_caching},
              EngineRole::kDecode, clock) {}

DecodeEngine::~DecodeEngine() = default;  // receive sessions release their blocks

Result<std::vector<int>> DecodeEngine::Reserve(DecodeJob job, int32_t* cached_blocks) {
  if (cached_blocks) *cached_blocks = 0;
  if (job.id.empty()) return InvalidArgumentError("request id is empty");
  const std::string who = "request " + job.id + ": ";
  RequestLimits limits = engine_.scheduler().limits();
  limits.require_seed = true;
  RETURN_IF_ERROR(ValidateRequest(job.prompt, job.params, limits).WithContext(who));
  if (awaiting_.count(job.id) || running_ids_.count(job.id)) {
    return AlreadyExistsError(who + "already reserved");
  }
  const int64_t prompt = static_cast<int64_t>(job.prompt.size());
  const int32_t need = options_.kv_allocation == KvAllocation::kGrow
                           ? BlocksForTokens(prompt, cache_.block_size())
                           : KvBlocksForRequest(prompt, job.params.max_tokens, cache_.block_size());
  BlockPool& pool = cache_.pool();
  // The prompt's leading blocks this node's cache holds (at most all but the block of the last
  // token: the prefill node always sends something, and its KvReady closes the transfer).
  std::vector<int32_t> hits;
  if (engine_.scheduler().prefix_caching()) {
    hits = pool.MatchPrefix(PrefixRoot(job.cache_salt), job.prompt,
                            static_cast<int32_t>((prompt - 1) / cache_.block_size()));
  }
  const int32_t take = pool.BlocksToTake(hits, need);
  if (!pool.CanAllocate(take)) {
    return ResourceExhaustedError(who + "needs " + std::to_string(take) + " KV blocks, " +
                                  std::to_string(pool.num_free()) + " of " + std::to_string(cache_.num_blocks()) +
                                  " free");
  }
  // Preempted requests waiting for memory come first: a stream of new reservations must not
  // keep taking the blocks they wait for (the router places the new one elsewhere, or later).
  const int32_t resuming = engine_.scheduler().blocks_for_waiting_head();
  if (resuming > 0 && !pool.CanAllocate(take + resuming)) {
    return ResourceExhaustedError(who + "needs " + std::to_string(take) + " KV blocks; the " +
                                  std::to_string(pool.num_free()) + " free are kept for " + std::to_string(resuming) +
                                  " a preempted request needs");
  }
  const int32_t cached = static_cast<int32_t>(hits.size());
  ASSIGN_OR_RETURN(std::vector<int32_t> blocks, pool.AllocateAfter(std::move(hits), need));
  if (cached_blocks) *cached_blocks = cached;
  if (job.arrival_us == 0) job.arrival_us = clock_.NowMicros();
  auto a = std::make_unique<Awaiting>();
  a->key = next_key_++;
  a->session = std::make_unique<KvReceiveSession>(
      a->key, layout_, std::vector<int>(blocks.begin(), blocks.end()),
      [&pool](std::span<const int> ids) {
        std::vector<int32_t> b(ids.begin(), ids.end());
        Status s = pool.Free(b);
        if (!s.ok()) GetLogger("decode")->error("releasing a reservation: {}", s.ToString());
      },
      SessionClock::now(), options_.session);
  a->session->MarkReservationSent(SessionClock::now());
  a->job = std::move(job);
  std::vector<int> out(blocks.begin(), blocks.end());
  awaiting_[a->job.id] = std::move(a);
  return out;
}

Status DecodeEngine::OnKvReady(const std::string& id, int32_t first_token, std::vector<DecodeEvent>* events,
                               const TransferStamps& transfer) {
  auto it = awaiting_.find(id);
  if (it == awaiting_.end()) return NotFoundError("request " + id + ": no reservation awaits KV");
  Awaiting& a = *it->second;
  KvReadyNotice notice;
  notice.request_id = a.key;
  notice.layout_hash = layout_.compatibility_hash();  // checked once at Hello
  notice.num_blocks = static_cast<int>(a.session->reservation().block_ids.size());
  const auto now = SessionClock::now();
  (void)a.session->OnKvReady(notice, now);
  Status bad;
  if (first_token < 0 || first_token >= transformer_.config().vocab_size) {
    bad = InvalidArgumentError("request " + id + ": first token " + std::to_string(first_token) +
                               " outside the vocabulary");
  } else if (a.session->state() != ReceiveState::kAdmitted) {
    bad = a.session->status().ok() ? AbortedError("request " + id + ": not admitted") : a.session->status();
  }
  if (!bad.ok()) {
    if (a.session->state() == ReceiveState::kAdmitted) {
      std::vector<int> b = a.session->TakeBlocks();
      std::vector<int32_t> blocks(b.begin(), b.end());
      (void)cache_.pool().Free(blocks);
    }
    DecodeEvent e;
    e.kind = DecodeEventKind::kError;
    e.request_id = id;
    e.error = bad;
    events->push_back(std::move(e));
    awaiting_.erase(it);
    return Status::Ok();
  }
  std::vector<int> b = a.session->TakeBlocks();
  Request r;
  r.id = static_cast<int64_t>(a.key);
  r.prompt = std::move(a.job.prompt);
  r.params = a.job.params;
  r.cache_salt = a.job.cache_salt;
  r.output = {first_token};
  r.block_table.assign(b.begin(), b.end());
  r.record.arrival_us = a.job.arrival_us;
  r.record.slo.tpot_ms = a.job.tpot_target_ms;
  r.record.slo.priority = a.job.slo_priority;
  r.record.kv_bytes = transfer.bytes;
  r.record.transfer_start_us = transfer.start_us;
  r.record.transfer_end_us = transfer.end_us;
  Status s = engine_.AddPrefilled(std::move(r));
  if (!s.ok()) {
    std::vector<int32_t> blocks(b.begin(), b.end());
    (void)cache_.pool().Free(blocks);
    DecodeEvent e;
    e.kind = DecodeEventKind::kError;
    e.request_id = id;
    e.error = s;
    events->push_back(std::move(e));
  } else {
    running_[static_cast<int64_t>(a.key)] = Running{id, 1, false};
    running_ids_[id] = static_cast<int64_t>(a.key);
  }
  awaiting_.erase(it);
  return Status::Ok();
}

void DecodeEngine::OnPeerAborted(const std::string& id) {
  auto it = awaiting_.find(id);
  if (it == awaiting_.end()) return;
  (void)it->second->session->OnPeerAborted(SessionClock::now());
  if (IsTerminal(it->second->session->state())) awaiting_.erase(it);
}

void DecodeEngine::OnPrefillLost(const std::string& id) {
  auto it = awaiting_.find(id);
  if (it == awaiting_.end()) return;
  (void)it->second->session->OnPeerFailed(UnavailableError("the prefill node's connection closed"),
                                          SessionClock::now());
  if (IsTerminal(it->second->session->state())) awaiting_.erase(it);
}

void DecodeEngine::Abort(const std::string& id) {
  auto it = awaiting_.find(id);
  if (it != awaiting_.end()) {
    (void)it->second->session->Abort(AbortedError("aborted by the router"), SessionClock::now());
    if (IsTerminal(it->second->session->state())) awaiting_.erase(it);
    return;
  }
  auto r = running_ids_.find(id);
  if (r == running_ids_.end()) return;
  (void)engine_.Abort(r->second);
  engine_.TakeFinished(r->second);
  running_.erase(r->second);
  running_ids_.erase(r);
}

void DecodeEngine::Poll(std::vector<DecodeEvent>* events) {
  const auto now = SessionClock::now();
  for (auto it = awaiting_.begin(); it != awaiting_.end();) {
    KvReceiveSession& s = *it->second->session;
    // kSendAbort from Poll means the reservation timed out: the router learns it now (and
    // aborts the prefill side); the blocks follow once the drain is over.
    if (s.Poll(now) == SessionAction::kSendAbort) {
      DecodeEvent e;
      e.kind = DecodeEventKind::kError;
      e.request_id = it->first;
      e.error = DeadlineExceededError("request " + it->first + ": KV never arrived; reservation released");
      events->push_back(std::move(e));
    }
    if (IsTerminal(s.state())) {
      it = awaiting_.erase(it);
    } else {
      ++it;
    }
  }
}

int32_t DecodeEngine::awaiting_blocks() const {
  size_t n = 0;
  for (const auto& [id, a] : awaiting_) {
    if (a->session) n += a->session->reservation().block_ids.size();
  }
  return static_cast<int32_t>(n);
}

bool DecodeEngine::Step(std::vector<DecodeEvent>* events) {
  if (!engine_.HasWork()) return false;
  Result<std::vector<StepOutput>> outputs = engine_.Step();
  if (!outputs.ok()) {
    // A broken invariant, not a model error: say so loudly; the requests stay where they are.
    GetLogger("decode")->error("decode step: {}", outputs.status().ToString());
    return engine_.last_step_ran();
  }
  for (const StepOutput& out : *outputs) {
    auto it = running_.find(out.request_id);
    if (it == running_.end()) continue;
    Running& run = it->second;
    if (out.finish_reason == FinishReason::kError) {
      // The step failed: this request ends (its blocks are free again); the others go on.
      DecodeEvent e;
      e.kind = DecodeEventKind::kError;
      e.request_id = run.id;
      e.error = out.status;
      events->push_back(std::move(e));
      engine_.TakeFinished(out.request_id);
      running_ids_.erase(run.id);
      running_.erase(it);
      continue;
    }
    DecodeEvent e;
    e.request_id = run.id;
    if (out.token >= 0) {
      e.tokens.push_back(out.token);
      ++run.generated;
    }
    e.num_generated = run.generated;
    e.finished = out.finish_reason != FinishReason::kNone;
    e.finish_reason = out.finish_reason;
    const Request* r = engine_.scheduler().Find(out.request_id);
    std::unique_ptr<Request> done;
    if (r == nullptr) {
      done = engine_.TakeFinished(out.request_id);
      r = done.get();
    }
    if (!run.admitted_reported && r != nullptr) {  // the first chunk says when it joined the batch
      run.admitted_reported = true;
      e.decode_admitted_us = r->record.decode_admitted_us;
      e.transfer = {r->record.kv_bytes, r->record.transfer_start_us, r->record.transfer_end_us};
    }
    if (r != nullptr) e.preemptions = r->record.preemptions;
    const bool finished = e.finished;
    events->push_back(std::move(e));
    if (finished) {
      running_ids_.erase(run.id);
      running_.erase(it);
    }
  }
  return engine_.last_step_ran();
}

}  // namespace tandem
