// The one scheduling core of every engine: the colocated worker, the prefill node and the decode
// node differ only in their EngineRole. It decides, it does not run: Schedule(now) returns the
// StepPlan of the next forward pass, the caller executes it (StepExecutor) and hands the sampled
// tokens back to Postprocess(now, ...). No clock is read and no I/O happens in here, so the same
// decisions replay under a virtual clock (tests, the simulator).
//
// Queues (a request is in exactly one):
//   waiting    no blocks yet (new, or preempted); admitted in queue order (FCFS, or EDF: see
//              QueueOrder; a preempted request goes back to the front under FCFS) while its
//              blocks are free and a sequence slot is (the head waits for blocks: nobody
//              overtakes it)
//   prefilled  decode role: KV computed elsewhere, blocks held, waiting for a sequence slot
//   running    blocks held; its prompt chunks, then one decode token per step
//   finished / handed_off   its end, kept until the owner takes it
//
// Schedule(now): every running request that finished its prompt gets one decode token; then
// admitted requests get prompt tokens in order, within the token budget
// (max_num_batched_tokens) and the sequence cap (max_num_seqs); a prompt that does not fit the
// remaining budget is chunked.
//
// KV memory (colocated and decode roles), KvAllocation:
//   kGrow     (default, as vLLM) admission takes the blocks of the prefill only; a decoding
//             sequence takes one more block when its next token starts one. When the pool is
//             out of blocks, running requests are preempted, least important first (largest
//             SLO priority value, then latest deadline, then latest admitted): their blocks are
//             freed and they go back to the waiting queue; on re-admission their prompt and
//             output are recomputed (see Request) and decoding resumes where it stopped, with
//             the same tokens an uninterrupted run draws (sampling is counter-based).
//   kReserve  admission takes KvBlocksForRequest (prompt + max_tokens) up front, so nothing is
//             ever preempted, at the price of memory held for tokens that may never come.
//
// Roles:
//   kColocated  admission as above; runs to the end.
//   kPrefill    admission allocates the prompt's blocks only. Once its prompt is complete (first
//               token sampled) or its step failed, the request leaves through TakeHandedOff()
//               WITH its blocks: the KV transfer may still read them, so the owner frees them
//               when the transfer is over. Never preempts.
//   kDecode     requests arrive prefilled (AddPrefilled, blocks reserved by the node) with
//               their first token; the next is drawn with step 1. A preempted one is recomputed
//               here, as a colocated engine would.
//
// A step that fails (FailStep) fails exactly the requests in its plan: their KV may be partly
// written, the other requests' KV is untouched, so the engine goes on serving them.
// Threading: one thread (the engine's).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "engine/request.h"
#include "engine/request_rules.h"
#include "model/block_pool.h"
#include "slo/latency_model.h"

namespace tandem {

enum class EngineRole { kColocated, kPrefill, kDecode };

// The order of the waiting queue. kDeadline: earliest TTFT deadline first (EDF), the deadline
// being arrival + the request's TTFT target, or arrival + untargeted_ttft_us for a request without
// one. Deadlines count from arrival, so waiting ages a request: a loose one that has waited long
// enough goes before a tight one that just came, and nothing starves. Equal deadlines keep
// arrival order; without targets it is FCFS.
enum class QueueOrder { kArrival, kDeadline };

// How a decoding sequence gets its KV blocks (see the header comment).
enum class KvAllocation { kGrow, kReserve };

struct SchedulerOptions {
  EngineRole role = EngineRole::kColocated;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  QueueOrder queue_order = QueueOrder::kArrival;
  KvAllocation kv_allocation = KvAllocation::kGrow;
  int64_t untargeted_ttft_us = kUntargetedTtftBudgetUs;
  // Decode role: predicted decode step time (batch, context tokens) -> us. With it, a prefilled
  // request joins the running batch only while the step predicted with it stays within every
  // member's TPOT target (its own included); otherwise it waits, its KV held (pull-based
  // admission, as DistServe's decode instances). An empty batch always takes the head. Null:
  // admit up to max_num_seqs.
  std::function<double(int32_t, int64_t)> step_time_us = nullptr;
  // false: requests' records keep first and last token stamps only (RequestRecord::AddToken);
  // the simulator's planner runs touch one cache line less per token.
  bool token_times = true;
  // Prefix caching (model/block_pool.h): admission reuses the cached blocks that hold the start
  // of a request's prompt (its tokens are not computed again) and every block a request fills is
  // registered for the requests after it. Decode role: a prefilled request's prompt blocks are
  // registered when it arrives (the node's reservations match against them: decode_engine.h).
  bool enable_prefix_caching = false;
};

// Prefix-cache counters, in prompt tokens, as vLLM's prefix_cache_queries/hits.
struct PrefixCacheStats {
  int64_t queried_tokens = 0;  // prefill tokens of admitted requests (recomputes included)
  int64_t hit_tokens = 0;      // of those, served from cached blocks
};

// A run of one request's tokens in a step: a prompt chunk, or one decode token.
struct ScheduledChunk {
  Request* request = nullptr;  // owned by the Scheduler; valid until Postprocess/FailStep
  int32_t start = 0;           // position of the first token; earlier ones are in the cache
  int32_t num_tokens = 0;
  bool want_logits = false;  // completes the prompt, or decodes: a token is sampled
  bool decode = false;       // one decode token (input: the last output token)

  std::span<const int32_t> tokens() const;
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;

  bool empty() const { return chunks.empty(); }
  int32_t num_tokens() const;
  int32_t num_samples() const;  // chunks that want logits
};

// What a plan asks of the model, in the latency model's terms: its prompt chunks, and its decode
// tokens (one per sequence) with the context they attend to. For the online correction of the
// latency model (the nodes compare their measured step times with its predictions).
struct StepShape {
  PrefillWork prefill;
  int32_t decode_batch = 0;
  int64_t decode_context = 0;
};
StepShape ShapeOf(const StepPlan& plan);

// What executing a plan produced: one sampled token per chunk that wants logits, in plan order.
struct StepResult {
  std::vector<int32_t> tokens;
};

struct StepOutput {
  int64_t request_id = 0;
  int32_t token = -1;  // -1 when the request ended without a new token (failed step)
  FinishReason finish_reason = FinishReason::kNone;
  Status status;             // kError: why
  bool first_token = false;  // `token` is the request's first output token
};

class Scheduler {
 public:
  // `eos_token_ids`: the model's end-of-sequence ids (stop unless ignore_eos).
  Scheduler(BlockPool& pool, int32_t block_size, RequestLimits limits, std::vector<int64_t> eos_token_ids,
            SchedulerOptions options);

  // Validates (ValidateRequest with this pool) and queues. AlreadyExists for a known id.
  Status Add(Request request, int64_t now);
  // Decode role: a request whose prompt K/V another node computed into this pool's blocks and
  // whose first token was sampled there. REQUIRES: block_table holds the prompt's blocks (kGrow)
  // or KvBlocksForRequest blocks (kReserve), taken from the pool (they become the scheduler's); output == {first
  // token}; seed set unless greedy.
  Status AddPrefilled(Request request, int64_t now);
  // Ends a queued or running request now (kAbort) and frees its blocks (a prefill-role request
  // still here has no transfer reading them). NotFound if unknown or already finished.
  Status Abort(int64_t request_id, int64_t now);

  // The request, while it is queued or running here; nullptr otherwise.
  Request* Find(int64_t request_id);

  StepPlan Schedule(int64_t now);
  // The same into `plan` (cleared first), whose capacity is reused: a simulator's hot loop.
  void Schedule(int64_t now, StepPlan* plan);
  // Applies a step's result: positions advance, tokens are appended and checked against the
  // stop rules, finished requests free their blocks (prefill role: are handed off).
  std::vector<StepOutput> Postprocess(int64_t now, const StepPlan& plan, const StepResult& result);
  // The same into `outputs` (cleared first, capacity reused).
  void Postprocess(int64_t now, const StepPlan& plan, const StepResult& result, std::vector<StepOutput>* outputs);
  // The plan could not be executed: every request in it ends with kError and `status`.
  std::vector<StepOutput> FailStep(int64_t now, const StepPlan& plan, const Status& status);

  // Requests waiting for admission or running their prompt, in the order they will run; the
  // prefill node uses it to ask for reservations shortly before their last chunk runs.
  std::vector<Request*> PendingPrompts();

  bool HasWork() const { return !waiting_.empty() || !running_.empty() || !prefilled_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size() + prefilled_.size()); }
  // Prefill tokens not yet computed (prompts, and recomputes), over waiting and running requests.
  int64_t pending_prompt_tokens() const;
  // KV blocks the head of the waiting queue needs to be admitted (0 when nothing waits): a
  // decode node keeps them for its preempted requests before it reserves for new ones.
  int32_t blocks_for_waiting_head() const { return waiting_.empty() ? 0 : AdmissionBlocks(*waiting_.front()); }

  // A finished request (colocated and decode roles), kept until taken.
  std::unique_ptr<Request> TakeFinished(int64_t request_id);
  // Prefill role: requests whose prompt is done (or whose step failed), with their blocks.
  std::vector<std::unique_ptr<Request>> TakeHandedOff();

  const RequestLimits& limits() const { return limits_; }
  const SchedulerOptions& options() const { return options_; }
  // Preemptions since this scheduler was made (kGrow).
  int64_t num_preemptions() const { return num_preemptions_; }
  bool prefix_caching() const { return caching_; }
  const PrefixCacheStats& prefix_cache_stats() const { return prefix_stats_; }

 private:
  int32_t AdmissionBlocks(const Request& r) const;
  bool grows() const { return options_.kv_allocation == KvAllocation::kGrow && options_.role != EngineRole::kPrefill; }
  // Admits the head of the waiting queue if its blocks (cached prefix + fresh) fit beside
  // `reserve` free blocks; false (nothing taken) otherwise.
  bool AdmitHead(int32_t reserve);
  // Registers the blocks `r` has filled since the last call in the prefix cache.
  void RegisterComputedBlocks(Request& r);
  // Whether `r` may join the running batch without a predicted TPOT miss (see step_time_us).
  bool BatchKeepsTpot(const Request& r) const;
  // kGrow: gives every decoding request the block its next token needs, preempting the least
  // important running requests when the pool is out (see the header comment).
  void GrowDecodingSequences();
  // Blocks a decoding request must add before its next token (<= 0: its last block has room).
  int32_t BlocksNeededForNextToken(const Request& r) const;
  // The running request to preempt first, not one of `keep`; nullptr when there is none.
  Request* PreemptionVictim(const std::vector<const Request*>& keep) const;
  // Frees `r`'s blocks and sends it back to the waiting queue, to be recomputed.
  void Preempt(Request& r);
  void InsertWaiting(std::unique_ptr<Request> r, bool preempted);
  // Where a request goes in waiting_ (kDeadline): its TTFT deadline.
  int64_t QueueKey(const Request& r) const;
  // Running requests whose prompt is not complete, in the order they get the token budget.
  std::vector<Request*> RunningPromptsInOrder();
  // The part of Add and AddPrefilled after their checks: history, record, index, queue.
  Status Enqueue(Request r, int64_t now, std::deque<std::unique_ptr<Request>>& queue);
  bool IsStopToken(const Request& r, int32_t token) const;
  void Finish(Request& r, FinishReason reason, int64_t now);
  // Moves finished (or, prefill role, prompt-complete) requests out of running_.
  void Retire();

  BlockPool& pool_;
  const int32_t block_size_;
  const RequestLimits limits_;
  const std::vector<int64_t> eos_token_ids_;
  const SchedulerOptions options_;
  std::deque<std::unique_ptr<Request>> waiting_;
  std::deque<std::unique_ptr<Request>> prefilled_;
  std::vector<std::unique_ptr<Request>> running_;
  std::unordered_map<int64_t, std::unique_ptr<Request>> finished_;
  std::vector<std::unique_ptr<Request>> handed_off_;
  std::unordered_map<int64_t, Request*> index_;  // every request in waiting_/prefilled_/running_
  int64_t num_preemptions_ = 0;
  bool caching_ = false;
  PrefixCacheStats prefix_stats_;
};

}  // namespace tandem
