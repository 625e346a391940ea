#include "engine/scheduler.h"

#include <algorithm>
#include <string>

namespace tandem {

std::span<const int32_t> ScheduledChunk::tokens() const {
  if (decode) return std::span<const int32_t>(&request->output.back(), 1);
  return std::span<const int32_t>(request->prefill_tokens())
      .subspan(static_cast<size_t>(start), static_cast<size_t>(num_tokens));
}

int32_t StepPlan::num_tokens() const {
  int32_t n = 0;
  for (const ScheduledChunk& c : chunks) n += c.num_tokens;
  return n;
}

int32_t StepPlan::num_samples() const {
  return static_cast<int32_t>(std::count_if(chunks.begin(), chunks.end(), [](const auto& c) { return c.want_logits; }));
}

Scheduler::Scheduler(BlockPool& pool, int32_t block_size, RequestLimits limits, std::vector<int64_t> eos_token_ids,
                     SchedulerOptions options)
    : pool_(pool),
      block_size_(block_size),
      limits_(limits),
      eos_token_ids_(std::move(eos_token_ids)),
      options_(options) {
  caching_ = options_.enable_prefix_caching && pool_.EnablePrefixCaching(block_size_).ok();
}

int32_t Scheduler::AdmissionBlocks(const Request& r) const {
  const int64_t prompt = static_cast<int64_t>(r.prompt.size());
  if (options_.role == EngineRole::kPrefill) return BlocksForTokens(prompt, block_size_);
  if (grows()) return BlocksForTokens(r.prefill_target(), block_size_);
  return KvBlocksForRequest(prompt, r.params.max_tokens, block_size_);
}

Status Scheduler::Add(Request r, int64_t now) {
  if (options_.role == EngineRole::kDecode)
    return FailedPreconditionError("a decode engine takes prefilled requests only");
  RETURN_IF_ERROR(ValidateRequest(r.prompt, r.params, limits_));
  // The pool must be able to hold what admission takes, or the request would wait forever.
  const int32_t blocks = AdmissionBlocks(r);
  if (blocks > pool_.num_blocks()) {
    return OutOfRangeError("request needs " + std::to_string(blocks) + " KV blocks; the pool holds " +
                           std::to_string(pool_.num_blocks()));
  }
  return Enqueue(std::move(r), now, waiting_);
}

Status Scheduler::Enqueue(Request r, int64_t now, std::deque<std::unique_ptr<Request>>& queue) {
  if (index_.count(r.id) || finished_.count(r.id)) {
    return AlreadyExistsError("request " + std::to_string(r.id) + " is already queued");
  }
  r.history = TokenHistory();
  if (r.params.uses_penalties()) {  // counting every token costs a hash update per token
    r.history.AddPrompt(r.prompt);
    for (int32_t t : r.output) r.history.AddOutput(t);
  }
  r.record.id = r.id;
  r.record.prompt_tokens = static_cast<int32_t>(r.prompt.size());
  if (r.record.arrival_us == 0) r.record.arrival_us = now;
  r.record.queued_us = now;
  auto owned = std::make_unique<Request>(std::move(r));
  index_[owned->id] = owned.get();
  if (&queue == &waiting_) {
    InsertWaiting(std::move(owned), /*preempted=*/false);
  } else {
    queue.push_back(std::move(owned));
  }
  return Status::Ok();
}

void Scheduler::InsertWaiting(std::unique_ptr<Request> r, bool preempted) {
  if (options_.queue_order == QueueOrder::kDeadline) {
    // A preempted request goes before the requests with its deadline (it was admitted first).
    const int64_t key = QueueKey(*r);
    auto at = std::find_if(waiting_.begin(), waiting_.end(),
                           [&](const auto& q) { return preempted ? QueueKey(*q) >= key : QueueKey(*q) > key; });
    waiting_.insert(at, std::move(r));
  } else if (preempted) {
    waiting_.push_front(std::move(r));
  } else {
    waiting_.push_back(std::move(r));
  }
}

bool Scheduler::BatchKeepsTpot(const Request& r) const {
  if (!options_.step_time_us) return true;
  double tightest = r.record.slo.tpot_ms;
  int64_t context = r.total_tokens();
  for (const auto& m : running_) {
    context += m->total_tokens();
    const double t = m->record.slo.tpot_ms;
    if (t > 0 && (tightest <= 0 || t < tightest)) tightest = t;
  }
  if (tightest <= 0) return true;
  return options_.step_time_us(static_cast<int32_t>(running_.size()) + 1, context) / 1000.0 <= tightest;
}

namespace {

// Preemption order: the larger priority value (less important), then the later deadline.
bool LessImportant(int32_t priority_a, int64_t key_a, int32_t priority_b, int64_t key_b) {
  if (priority_a != priority_b) return priority_a > priority_b;
  return key_a > key_b;
}

}  // namespace

int32_t Scheduler::BlocksNeededForNextToken(const Request& r) const {
  return BlocksForTokens(r.num_computed + 1, block_size_) - static_cast<int32_t>(r.block_table.size());
}

Request* Scheduler::PreemptionVictim(const std::vector<const Request*>& keep) const {
  Request* victim = nullptr;
  for (const auto& r : running_) {  // admission order: a later one wins ties (>= below)
    if (std::find(keep.begin(), keep.end(), r.get()) != keep.end()) continue;
    if (victim == nullptr ||
        !LessImportant(victim->record.slo.priority, QueueKey(*victim), r->record.slo.priority, QueueKey(*r))) {
      victim = r.get();
    }
  }
  return victim;
}

void Scheduler::Preempt(Request& r) {
  if (!r.block_table.empty()) {
    pool_.Free(r.block_table).IgnoreError();  // ours: cannot fail unless state is corrupt
    r.block_table.clear();
  }
  r.num_computed = 0;
  r.hashed_blocks = 0;
  r.prefix_hash = {};
  r.resume_tokens.clear();
  if (!r.output.empty()) {
    r.resume_tokens = r.prompt;
    r.resume_tokens.insert(r.resume_tokens.end(), r.output.begin(), r.output.end() - 1);
  }
  ++r.record.preemptions;
  ++num_preemptions_;
  auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& q) { return q.get() == &r; });
  std::unique_ptr<Request> owned = std::move(*it);
  running_.erase(it);
  InsertWaiting(std::move(owned), /*preempted=*/true);
}

void Scheduler::GrowDecodingSequences() {
  int32_t total_need = 0;
  for (auto& r : running_) {
    if (r->prefill_done()) total_need += std::max(0, BlocksNeededForNextToken(*r));
  }
  if (total_need == 0) return;          // most steps: every next token fits its last block
  if (pool_.CanAllocate(total_need)) {  // room for all: no order to decide
    for (auto& r : running_) {
      const int32_t need = r->prefill_done() ? BlocksNeededForNextToken(*r) : 0;
      if (need <= 0) continue;
      if (!pool_.AllocateAppend(need, &r->block_table).ok()) break;  // CanAllocate said yes: cannot happen
    }
    return;
  }
  std::vector<Request*> decoding;
  for (auto& r : running_) {
    if (r->prefill_done()) decoding.push_back(r.get());
  }
  // The most important get their blocks first; the victims come from the other end.
  std::stable_sort(decoding.begin(), decoding.end(), [&](const Request* a, const Request* b) {
    return LessImportant(b->record.slo.priority, QueueKey(*b), a->record.slo.priority, QueueKey(*a));
  });
  std::vector<const Request*> kept;
  std::vector<const Request*> preempted;
  for (Request* r : decoding) {
    if (std::find(preempted.begin(), preempted.end(), r) != preempted.end()) continue;
    const int32_t need = BlocksNeededForNextToken(*r);
    if (need <= 0) {
      kept.push_back(r);
      continue;
    }
    while (!pool_.CanAllocate(need)) {
      Request* victim = PreemptionVictim(kept);
      if (victim == nullptr || victim == r) break;
      preempted.push_back(victim);
      Preempt(*victim);
    }
    // Still short: it is the least important left, or the blocks are held outside the running
    // batch (the decode node's reservations, prefilled requests waiting for a slot).
    Result<std::vector<int32_t>> more =
        pool_.CanAllocate(need) ? pool_.Allocate(need) : ResourceExhaustedError("the KV pool is full");
    if (!more.ok()) {
      preempted.push_back(r);
      Preempt(*r);
      continue;
    }
    r->block_table.insert(r->block_table.end(), more.value().begin(), more.value().end());
    kept.push_back(r);
  }
}

StepShape ShapeOf(const StepPlan& plan) {
  StepShape shape;
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.decode) {
      ++shape.decode_batch;
      shape.decode_context += c.start + 1;
    } else {
      shape.prefill.AddChunk(c.start, c.num_tokens);
    }
  }
  return shape;
}

int64_t Scheduler::QueueKey(const Request& r) const {
  const double ttft_ms = r.record.slo.ttft_ms;
  if (ttft_ms <= 0) return r.record.arrival_us + options_.untargeted_ttft_us;
  return TtftDeadlineUs(r.record.arrival_us, ttft_ms);
}

Status Scheduler::AddPrefilled(Request r, int64_t now) {
  if (options_.role != EngineRole::kDecode)
    return FailedPreconditionError("only a decode engine takes prefilled requests");
  RETURN_IF_ERROR(ValidateRequest(r.prompt, r.params, limits_));
  if (r.output.size() != 1) {
    return InvalidArgumentError("a prefilled request carries exactly its first token, got " +
                                std::to_string(r.output.size()));
  }
  const int32_t need = AdmissionBlocks(r);
  if (static_cast<int32_t>(r.block_table.size()) < need) {
    return InvalidArgumentError("prefilled request holds " + std::to_string(r.block_table.size()) + " blocks, needs " +
                                std::to_string(need));
  }
  for (int32_t b : r.block_table) {
    if (pool_.RefCount(b) < 1) {
      return InvalidArgumentError("prefilled request names block " + std::to_string(b) + ", which is not held");
    }
  }
  r.num_computed = static_cast<int32_t>(r.prompt.size());
  if (caching_) RegisterComputedBlocks(r);  // its prompt's KV has landed: the next turn may find it
  return Enqueue(std::move(r), now, prefilled_);
}

Request* Scheduler::Find(int64_t request_id) {
  auto it = index_.find(request_id);
  return it == index_.end() ? nullptr : it->second;
}

void Scheduler::Finish(Request& r, FinishReason reason, int64_t now) {
  r.finish_reason = reason;
  r.record.finish_reason = reason;
  r.record.status = r.status;
  r.record.finish_us = now;
  // A prefill-role request that completed its prompt keeps its blocks: the owner frees them
  // when its KV transfer is over (see TakeHandedOff).
  const bool hand_off = options_.role == EngineRole::kPrefill && (r.prefill_done() || reason == FinishReason::kError);
  if (hand_off || r.block_table.empty()) return;
  // The blocks came from this pool, so freeing cannot fail unless state is corrupt.
  Status s = pool_.Free(r.block_table);
  if (!s.ok()) {
    r.finish_reason = r.record.finish_reason = FinishReason::kError;
    r.status = r.record.status = s.WithContext("freeing the request's KV blocks");
  }
  r.block_table.clear();
}

Status Scheduler::Abort(int64_t request_id, int64_t now) {
  auto match = [&](const std::unique_ptr<Request>& r) { return r->id == request_id; };
  auto abort_in = [&](auto& queue) {
    auto it = std::find_if(queue.begin(), queue.end(), match);
    if (it == queue.end()) return false;
    Request& r = **it;
    r.finish_reason = r.record.finish_reason = FinishReason::kAbort;
    r.record.finish_us = now;
    if (!r.block_table.empty()) {
      pool_.Free(r.block_table).IgnoreError();  // ours: cannot fail unless state is corrupt
      r.block_table.clear();
    }
    index_.erase(request_id);
    finished_[request_id] = std::move(*it);
    queue.erase(it);
    return true;
  };
  if (abort_in(running_) || abort_in(waiting_) || abort_in(prefilled_)) return Status::Ok();
  return NotFoundError("request " + std::to_string(request_id) + " is not queued or running");
}

bool Scheduler::IsStopToken(const Request& r, int32_t token) const {
  if (!r.params.ignore_eos && std::find(eos_token_ids_.begin(), eos_token_ids_.end(), token) != eos_token_ids_.end()) {
    return true;
  }
  const auto& stop = r.params.stop_token_ids;
  return std::find(stop.begin(), stop.end(), token) != stop.end();
}

StepPlan Scheduler::Schedule(int64_t now) {
  StepPlan plan;
  Schedule(now, &plan);
  return plan;
}

void Scheduler::Schedule(int64_t now, StepPlan* out) {
  StepPlan& plan = *out;
  plan.chunks.clear();
  while (!prefilled_.empty() && static_cast<int32_t>(running_.size()) < options_.max_num_seqs) {
    Request& r = *prefilled_.front();
    if (!running_.empty() && !BatchKeepsTpot(r)) break;  // its KV waits for the batch to shrink
    if (r.record.decode_admitted_us == 0) r.record.decode_admitted_us = now;
    running_.push_back(std::move(prefilled_.front()));
    prefilled_.pop_front();
  }
  if (grows()) GrowDecodingSequences();
  int32_t budget = options_.max_num_batched_tokens;
  for (auto& r : running_) {
    if (!r->prefill_done() || budget <= 0) continue;
    plan.chunks.push_back(ScheduledChunk{r.get(), r->num_computed, 1, true, true});
    --budget;
  }
  // Admission in queue order while blocks are free; the head waits for blocks, nobody overtakes
  // it. Growing sequences keep a watermark free for their next blocks: two per running sequence
  // (each takes one per block_size steps), at least 1% of the pool (vLLM's). A new prompt is then
  // not admitted only to be preempted a few steps later: on bench/kv_growth_bench's chatbot
  // workload this cut preemptions from 569 to 73 per 1000 requests (recompute tokens -75%) for
  // a mean batch 4% smaller than vLLM's 1% alone (docs/goodput.md).
  const int32_t watermark = grows() ? std::max(pool_.num_blocks() / 100, 2 * static_cast<int32_t>(running_.size())) : 0;
  while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < options_.max_num_seqs && budget > 0) {
    if (!AdmitHead(running_.empty() ? 0 : watermark)) break;
  }
  for (Request* r : RunningPromptsInOrder()) {
    if (budget <= 0) break;
    const int32_t remaining = r->remaining_prefill();
    const int32_t take = std::min(remaining, budget);
    if (r->record.prefill_start_us == 0) r->record.prefill_start_us = now;
    // A recompute does not sample: the token after it is drawn by a decode step, as it would
    // have been without the preemption.
    const bool samples = take == remaining && r->output.empty();
    plan.chunks.push_back(ScheduledChunk{r, r->num_computed, take, samples, false});
    budget -= take;
  }
}

bool Scheduler::AdmitHead(int32_t reserve) {
  Request& r = *waiting_.front();
  const int32_t blocks = AdmissionBlocks(r);
  std::vector<int32_t> hits;
  std::vector<BlockHash> hashes;
  const BlockHash root = caching_ ? PrefixRoot(r.cache_salt) : BlockHash{};
  if (caching_) {
    // At least the last prefill token is computed: the prompt's last position gives the logits
    // of the first token (and a recompute resumes decoding from computed K/V).
    const std::span<const int32_t> tokens(r.prefill_tokens().data(), static_cast<size_t>(r.prefill_target()));
    hits = pool_.MatchPrefix(root, tokens, (r.prefill_target() - 1) / block_size_, &hashes);
  }
  if (!pool_.CanAllocate(pool_.BlocksToTake(hits, blocks) + reserve)) return false;
  Result<std::vector<int32_t>> table = pool_.AllocateAfter(std::move(hits), blocks);
  if (!table.ok()) return false;  // CanAllocate said yes: cannot happen
  r.block_table = std::move(table).value();
  if (caching_) {
    const int32_t cached = static_cast<int32_t>(hashes.size()) * block_size_;
    r.num_computed = cached;
    r.hashed_blocks = static_cast<int32_t>(hashes.size());
    r.prefix_hash = hashes.empty() ? root : hashes.back();
    if (r.output.empty()) r.record.cached_tokens = cached;
    prefix_stats_.queried_tokens += r.prefill_target();
    prefix_stats_.hit_tokens += cached;
  }
  running_.push_back(std::move(waiting_.front()));
  waiting_.pop_front();
  return true;
}

void Scheduler::RegisterComputedBlocks(Request& r) {
  const int32_t full = std::min(r.num_computed / block_size_, static_cast<int32_t>(r.block_table.size()));
  if (r.hashed_blocks >= full) return;
  BlockHash h = r.hashed_blocks == 0 ? PrefixRoot(r.cache_salt) : r.prefix_hash;
  std::vector<int32_t> tokens(static_cast<size_t>(block_size_));
  for (int32_t i = r.hashed_blocks; i < full; ++i) {
    for (int32_t j = 0; j < block_size_; ++j) tokens[j] = r.token_at(i * block_size_ + j);
    h = ChainBlockHash(h, tokens);
    pool_.Register(r.block_table[i], h, tokens);
  }
  r.hashed_blocks = full;
  r.prefix_hash = h;
}

std::vector<StepOutput> Scheduler::Postprocess(int64_t now, const StepPlan& plan, const StepResult& result) {
  std::vector<StepOutput> outputs;
  Postprocess(now, plan, result, &outputs);
  return outputs;
}

void Scheduler::Postprocess(int64_t now, const StepPlan& plan, const StepResult& result, std::vector<StepOutput>* out) {
  std::vector<StepOutput>& outputs = *out;
  outputs.clear();
  outputs.reserve(plan.chunks.size());
  size_t sample = 0;
  for (const ScheduledChunk& c : plan.chunks) {
    Request& r = *c.request;
    const bool was_prefill = !c.decode;
    r.num_computed += c.num_tokens;
    if (caching_) RegisterComputedBlocks(r);
    if (was_prefill && r.prefill_done()) r.resume_tokens.clear();  // a recompute is over
    if (!c.want_logits) continue;
    if (sample >= result.tokens.size()) {
      // An executor that returned fewer tokens than the plan asked for is a bug: fail the rest.
      r.status = InternalError("the step produced no token for request " + std::to_string(r.id));
      Finish(r, FinishReason::kError, now);
      outputs.push_back({r.id, -1, FinishReason::kError, r.status});
      continue;
    }
    const int32_t token = result.tokens[sample++];
    r.output.push_back(token);
    if (r.params.uses_penalties()) r.history.AddOutput(token);
    if (was_prefill) r.record.prefill_end_us = now;
    r.record.AddToken(now, options_.token_times);
    FinishReason reason = FinishReason::kNone;
    if (IsStopToken(r, token)) {
      reason = FinishReason::kStop;
    } else if (static_cast<int32_t>(r.output.size()) >= r.params.max_tokens) {
      reason = FinishReason::kLength;
    }
    if (reason != FinishReason::kNone) Finish(r, reason, now);
    outputs.push_back({r.id, token, r.finish_reason, {}, r.output.size() == 1});  // r.status is Ok here
  }
  Retire();
}

std::vector<StepOutput> Scheduler::FailStep(int64_t now, const StepPlan& plan, const Status& status) {
  std::vector<StepOutput> outputs;
  for (const ScheduledChunk& c : plan.chunks) {
    Request& r = *c.request;
    if (r.finished()) continue;
    r.status = status;
    Finish(r, FinishReason::kError, now);
    outputs.push_back({r.id, -1, FinishReason::kError, status});
  }
  Retire();
  return outputs;
}

void Scheduler::Retire() {
  for (auto it = running_.begin(); it != running_.end();) {
    Request& r = **it;
    const bool hand_off = options_.role == EngineRole::kPrefill && (r.prefill_done() || r.finished());
    if (!hand_off && !r.finished()) {
      ++it;
      continue;
    }
    index_.erase(r.id);
    if (hand_off) {
      handed_off_.push_back(std::move(*it));
    } else {
      finished_[r.id] = std::move(*it);
    }
    it = running_.erase(it);
  }
}

std::vector<Request*> Scheduler::RunningPromptsInOrder() {
  std::vector<Request*> out;
  for (auto& r : running_) {
    if (!r->prefill_done()) out.push_back(r.get());
  }
  // Deadline order holds for prompts already admitted too: a prefill node admits every prompt
  // its pool holds at once, so the order of the budget among running prompts is the queue order.
  if (options_.queue_order == QueueOrder::kDeadline) {
    std::stable_sort(out.begin(), out.end(), [&](Request* a, Request* b) { return QueueKey(*a) < QueueKey(*b); });
  }
  return out;
}

std::vector<Request*> Scheduler::PendingPrompts() {
  std::vector<Request*> out = RunningPromptsInOrder();
  for (auto& r : waiting_) out.push_back(r.get());
  return out;
}

int64_t Scheduler::pending_prompt_tokens() const {
  int64_t n = 0;
  for (const auto& r : waiting_) n += r->remaining_prefill();
  for (const auto& r : running_) n += std::max(0, r->remaining_prefill());
  return n;
}

std::unique_ptr<Request> Scheduler::TakeFinished(int64_t request_id) {
  auto it = finished_.find(request_id);
  if (it == finished_.end()) return nullptr;
  auto r = std::move(it->second);
  finished_.erase(it);
  return r;
}

std::vector<std::unique_ptr<Request>> Scheduler::TakeHandedOff() {
  std::vector<std::unique_ptr<Request>> out;
  out.swap(handed_off_);
  return out;
}

}  // namespace tandem
