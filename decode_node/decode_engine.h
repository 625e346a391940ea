// The decode node's engine: KV reservations for requests whose prompt another node prefills,
// then the engine core (engine/engine.h) in its decode role.
//
//   Reserve: asked by the prefill node shortly before it runs the request's last prompt chunk.
//            CanAllocate(the prompt's blocks; prompt + max_tokens with kReserve) then Allocate
//            -> a KvReceiveSession in kAwaitingKv
//            (refused with ResourceExhausted, nothing taken, when the pool is full).
//   OnKvReady: the session validates and admits -> the blocks and {prompt, first token} go into
//            the Engine through AddPrefilled, so the next token is drawn with step 1 exactly as a
//            single-process run would.
//   Step:    one Engine step (decode tokens for up to max_num_seqs requests) -> one token event
//            per request; the core frees blocks on finish (EOS/stop ids/max_tokens) or abort. A
//            step that fails ends its requests with kError events and frees their blocks.
//   Poll:    reservation timeouts (KV that never arrives releases its blocks).
//
// No protobuf here: the service converts at its edge. Threading: one thread (the node's engine
// thread) owns this, the Transformer and the KvCache.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/engine.h"
#include "kv_transfer/kv_layout.h"
#include "kv_transfer/transfer_session.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace tandem {

struct DecodeJob {
  std::string id;
  std::vector<int32_t> prompt;
  SamplingParams params;      // seed set unless greedy (the router draws it)
  int64_t arrival_us = 0;     // this process's steady clock; 0: now
  double tpot_target_ms = 0;  // 0: none (see DecodeEngineOptions::step_time_us)
  int32_t slo_priority = 0;   // its SLO class's priority (smaller: preempted later)
  std::string cache_salt;     // prefix caching: the salt its cached blocks are found under
};

enum class DecodeEventKind {
  kTokens,  // -> router: new tokens (finished + reason on the last)
  kError,   // -> router: the request failed here (KV never arrived, bad notice, ...)
};

// The KV transfer of a request, as its KvReady says (steady clock of this process).
struct TransferStamps {
  int64_t bytes = -1;  // -1: unknown
  int64_t start_us = 0;
  int64_t end_us = 0;
};

struct DecodeEvent {
  DecodeEventKind kind = DecodeEventKind::kTokens;
  std::string request_id;
  std::vector<int32_t> tokens;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  uint32_t num_generated = 0;      // including the first token sampled by the prefill node
  int64_t decode_admitted_us = 0;  // steady; on the request's first token event only
  TransferStamps transfer;         // on the request's first token event only
  int32_t preemptions = 0;         // on its last event: times it was preempted here
  Status error;
};

struct DecodeEngineOptions {
  int32_t max_num_seqs = 64;
  // Tokens per step: the decode tokens, and the recompute of preempted requests (kGrow).
  int32_t max_num_batched_tokens = 512;
  // kGrow: a reservation takes the prompt's blocks and sequences grow, preempted (and
  // recomputed here) when the pool runs out; kReserve: prompt + max_tokens up front.
  KvAllocation kv_allocation = KvAllocation::kGrow;
  // The latency model's decode step time (batch, context tokens) -> us, corrected online; with
  // it, a request whose KV has landed joins the batch only while the predicted step stays within
  // every member's TPOT target (otherwise its KV waits). Null: admit up to max_num_seqs.
  std::function<double(int32_t, int64_t)> step_time_us = nullptr;
  SessionOptions session;  // transfer_timeout bounds reservation -> KvReady
  // Prefix caching: prompts that land here and the blocks decoding fills stay cached; a
  // reservation whose prompt starts with cached blocks takes them and asks only for the rest.
  bool enable_prefix_caching = false;
};

class DecodeEngine {
 public:
  DecodeEngine(Transformer& transformer, KvCache& cache, DecodeEngineOptions options,
               const Clock& clock = SteadyClock::Instance());
  ~DecodeEngine();

  const KvLayout& layout() const { return layout_; }

  // Reserves the prompt's blocks (kGrow) or prompt + max_tokens (kReserve). InvalidArgument / OutOfRange for a bad job,
  // AlreadyExists for a known id, ResourceExhausted when the pool cannot hold it now.
  // With prefix caching, the leading blocks that already hold the prompt's KV come first and
  // their number goes to `cached_blocks` (the prefill node sends only the rest).
  Result<std::vector<int>> Reserve(DecodeJob job, int32_t* cached_blocks = nullptr);
  // The prefill node flushed the KV; `first_token` was sampled there with step 0.
  // NotFound for an unknown id (e.g. already timed out); on a bad notice the blocks are freed
  // and a kError event is emitted.
  Status OnKvReady(const std::string& id, int32_t first_token, std::vector<DecodeEvent>* events,
                   const TransferStamps& transfer = {});
  // The prefill node ended the transfer without KV (its Abort, or KvReady{ok=false}): no write
  // is in flight, so the reservation is released at once. Idempotent.
  void OnPeerAborted(const std::string& id);
  // The router's Abort: a reservation drains (a PUT may still be in flight) until the prefill
  // node's Abort or the drain timeout; a running request is removed and its blocks freed.
  // Idempotent for unknown ids.
  void Abort(const std::string& id);
  // The prefill node that reserved `id` is gone: a reservation still awaiting its KV drains
  // (writes already posted may land) and is freed; a running request is not affected.
  void OnPrefillLost(const std::string& id);

  bool HasWork() const { return engine_.HasWork(); }
  // One decode step; returns whether a forward pass ran.
  bool Step(std::vector<DecodeEvent>* events);
  // The shape of the last step that ran (the latency model's online correction).
  const StepShape& last_step_shape() const { return engine_.last_step_shape(); }
  void Poll(std::vector<DecodeEvent>* events);

  int32_t num_awaiting() const { return static_cast<int32_t>(awaiting_.size()); }
  int32_t num_running() const { return engine_.num_running() + engine_.num_queued(); }
  int32_t num_batched() const { return engine_.num_running(); }  // in the decode batch (not waiting in it)
  // Blocks reserved for requests whose KV has not landed (GET /metrics).
  int32_t awaiting_blocks() const;
  int32_t free_blocks() const { return cache_.pool().num_free(); }
  int64_t num_preemptions() const { return engine_.scheduler().num_preemptions(); }
  int32_t total_blocks() const { return cache_.num_blocks(); }

 private:
  struct Awaiting {
    DecodeJob job;
    uint64_t key = 0;
    std::unique_ptr<KvReceiveSession> session;
  };
  struct Running {
    std::string id;
    uint32_t generated = 0;
    bool admitted_reported = false;
  };

  Transformer& transformer_;
  KvCache& cache_;
  DecodeEngineOptions options_;
  const Clock& clock_;
  KvLayout layout_;
  Engine engine_;
  std::map<std::string, std::unique_ptr<Awaiting>> awaiting_;
  std::unordered_map<int64_t, Running> running_;  // engine request id -> request
  std::unordered_map<std::string, int64_t> running_ids_;
  uint64_t next_key_ = 1;
};

}  // namespace tandem
