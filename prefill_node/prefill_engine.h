// The prefill node's engine: the engine core (engine/scheduler.h) in its prefill role, plus the
// KV hand-off to the decode node. A request:
//
//   Add ──▶ [queued in the Scheduler] ── within `reserve_lookahead_tokens` (one budget: the step
//           about to run) of its last chunk ──▶ kReserve event, sent before the forward pass:
//           the service asks the decode node D to reserve prompt + max_tokens blocks (ReserveKv);
//           the round trip overlaps the pass
//   the step that completes the prompt: a KvSendSession per request, awaiting the reservation
//           if it has not come yet; each layer's KV is posted as soon as both the layer is
//           computed and the reservation is there (LayerDoneFn), so it moves while the next
//           layers compute; the first token (step 0) is sampled
//   first token ──▶ kFirstToken (TTFT) once D's reservation is there (at once when it came
//           first): a request is never seen to start before it has a decode node
//   D refuses ──▶ kRefused (the router places it elsewhere; nothing was streamed); it leaves
//   flush complete ──▶ kKvReady (to D, a copy to the router); P's blocks are freed only once the
//           session is terminal, never while a PUT may still read them
//
// Reserving shortly before the last chunk, not when the request arrives, means a request waiting
// in this queue holds no decode memory and cannot outlive a reservation timer: its deadline
// (PrefillJob::deadline_us, from the router) bounds how long it may wait. Computing without
// waiting for the reservation keeps the prefill node <-> decode node round trip off the TTFT.
// A step that fails fails exactly its requests (kError, transfers aborted, blocks freed once no
// PUT reads them); the node goes on serving the others.
//
// Reservations arrive on an io thread: PostReservation (thread-safe) puts them in a mailbox that
// the engine thread drains between steps and between layers, so one that arrives mid-forward
// starts its transfer before the forward pass ends.
//
// No protobuf here: the service converts messages to PrefillJob and PrefillEvent at its edge.
// Threading: one thread (the node's engine thread) owns this, the Transformer, the KvCache and
// the Transport; PostReservation may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/scheduler.h"
#include "engine/step_executor.h"
#include "kv_transfer/kv_layout.h"
#include "kv_transfer/transfer_session.h"
#include "kv_transfer/transport.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace tandem {

// Add's refusal (reason) when the request's decode node is not connected here.
inline constexpr const char* kDecodeUnreachable = "decode_unreachable";

struct PrefillJob {
  std::string id;
  std::vector<int32_t> prompt;
  SamplingParams params;    // seed set unless greedy (the router draws it)
  std::string decode_node;  // where the KV goes
  std::string router_id;    // the router that gets the tokens (the decode node needs it)
  int64_t arrival_us = 0;   // this process's steady clock; 0: now
  int64_t deadline_us = 0;  // this process's steady clock; 0: none
  RequestSlo slo;           // orders the queue (earliest TTFT deadline first)
  std::string cache_salt;   // prefix caching: shares cached blocks only with equal salts
};

enum class PrefillEventKind {
  kReserve,      // -> decode node: reserve KV for this request (prompt, params, router_id)
  kFirstToken,   // -> router
  kKvReady,      // -> decode node (and a copy to the router): every byte of the KV is there
  kAbortDecode,  // -> decode node: release the reservation (no write of ours is in flight)
  kRefused,      // -> router: the decode node refused to reserve; the request left this node
  kError,        // -> router: the request failed here
};

struct PrefillEvent {
  PrefillEventKind kind = PrefillEventKind::kError;
  std::string request_id;
  std::string decode_node;
  int32_t token = -1;     // kFirstToken, kKvReady: the first token
  bool finished = false;  // kFirstToken: nothing left for the decode node
  FinishReason finish_reason = FinishReason::kNone;
  std::vector<int32_t> prompt;  // kReserve
  SamplingParams params;        // kReserve
  double tpot_target_ms = 0;    // kReserve
  int32_t slo_priority = 0;     // kReserve
  std::string router_id;        // kReserve
  uint64_t bytes = 0;           // kKvReady
  uint32_t num_prompt_tokens = 0;
  // Steady stamps of this process (the service converts them to Unix time for the wire).
  int64_t arrival_us = 0, prefill_start_us = 0, prefill_end_us = 0;
  int32_t cached_tokens = 0;                           // kFirstToken: prompt tokens the prefix cache held
  std::string cache_salt;                              // kReserve: the decode node's prefix cache is searched under it
  int64_t transfer_start_us = 0, transfer_end_us = 0;  // kKvReady
  std::string reason;                                  // kRefused
  Status error;                                        // kError
};

struct PrefillEngineOptions {
  int32_t max_num_batched_tokens = 2048;
  // Earliest TTFT deadline first (default), or arrival order (--prefill-queue fcfs).
  QueueOrder queue_order = QueueOrder::kDeadline;
  // Ask the decode node for a reservation once the prompt tokens ahead of a request plus its own
  // remaining ones are at most this many. The default, one budget, asks at the start of the step
  // that completes the prompt (the round trip overlaps that step's forward pass) and holds decode
  // memory for no request that is still waiting for a later step. 0: the budget.
  int32_t reserve_lookahead_tokens = 0;
  // Reuse cached prompt prefixes (SchedulerOptions::enable_prefix_caching); the commands turn it
  // on (--enable-prefix-caching, the default there).
  bool enable_prefix_caching = false;
  SessionOptions session;
};

class PrefillEngine {
 public:
  PrefillEngine(Transformer& transformer, KvCache& cache, Transport& transport, PrefillEngineOptions options,
                const Clock& clock = SteadyClock::Instance());
  ~PrefillEngine();

  // The pool layout (its compatibility_hash() is what decode nodes must match).
  const KvLayout& layout() const { return layout_; }

  // A decode node whose transport endpoint is connected as `peer`; its pool has
  // `pool_num_blocks` blocks. Replaces an earlier registration of the same node.
  void SetDecodePeer(const std::string& node, PeerId peer, int pool_num_blocks);
  // The decode node is gone: requests bound for it fail (kError) and their transfers are aborted.
  void RemoveDecodePeer(const std::string& node, std::vector<PrefillEvent>* events);
  bool HasDecodePeer(const std::string& node) const { return peers_.count(node) != 0; }

  // Validates and queues (see ValidateRequest; the prompt must fit this pool). FailedPrecondition
  // when the decode node is not connected, AlreadyExists for a known id.
  Status Add(PrefillJob job);
  // Decode node `decode_node`'s answer to a kReserve: its block ids, or why not. Engine thread.
  // `cached_blocks`: the leading blocks the decode node's prefix cache holds already (not sent).
  void OnReservation(const std::string& decode_node, const std::string& id, bool ok, const std::vector<int>& block_ids,
                     const std::string& reason, std::vector<PrefillEvent>* events, int32_t cached_blocks = 0);
  // The same answer from any thread: applied by the engine thread at its next drain (every Step
  // and Poll, and between the layers of a forward pass).
  void PostReservation(std::string decode_node, std::string id, bool ok, std::vector<int> block_ids, std::string reason,
                       int32_t cached_blocks = 0);
  // Applies the posted answers. Engine thread.
  void DrainReservations(std::vector<PrefillEvent>* events);
  // Drops a queued request, or cancels its transfer; idempotent for unknown ids.
  void Abort(const std::string& id, std::vector<PrefillEvent>* events);

  // Where events go that must leave before a forward pass starts (the reservation requests, so
  // that the decode node's round trip overlaps the pass): Step hands them over, and clears
  // them, just before it executes. Unset, they stay in Step's output.
  void SetEarlyDispatch(std::function<void(std::vector<PrefillEvent>&)> dispatch) { early_ = std::move(dispatch); }

  bool HasWork() const { return scheduler_.HasWork() || num_transferring_ > 0; }
  // Deadlines, reservations to ask for, and one forward pass over what may run. Returns whether
  // a forward pass ran (nothing may be runnable while reservations are on their way).
  bool Step(std::vector<PrefillEvent>* events);
  // The shape of the last step that ran (the latency model's online correction).
  const StepShape& last_step_shape() const { return last_step_shape_; }
  // Advances transfers and timeouts; call every loop iteration.
  void Poll(std::vector<PrefillEvent>* events);

  int32_t num_queued() const { return scheduler_.num_running() + scheduler_.num_waiting(); }
  int64_t queued_tokens() const { return scheduler_.pending_prompt_tokens(); }
  int32_t num_transferring() const { return num_transferring_; }

 private:
  struct Active;
  struct PostedReservation {
    std::string decode_node, id;
    bool ok = false;
    std::vector<int> block_ids;
    std::string reason;
    int32_t cached_blocks = 0;
  };
  struct DecodePeer {
    PeerId peer = 0;
    int pool_num_blocks = 0;
  };

  Active* FindActive(const std::string& id);
  void Erase(int64_t key);
  void ExpireDeadlines(int64_t now, std::vector<PrefillEvent>* events);
  void AskReservations(std::vector<PrefillEvent>* events);
  // Sessions for the requests whose prompt this step completes (awaiting their reservation if
  // it has not come yet); the ones the forward pass reports its layers to.
  std::vector<Active*> StartSessions(const StepPlan& plan, std::vector<PrefillEvent>* events);
  // Asks the decode node for a reservation (kReserve), once.
  void Ask(Active& a, std::vector<PrefillEvent>* events);
  // Applies posted grants only (during a forward pass: refusals wait for the step's end).
  void DrainGrants(std::vector<PrefillEvent>* events);
  void HandOff(std::unique_ptr<Request> r, std::vector<PrefillEvent>* events);
  // The session got D's reservation: its computed layers go out; a held first token too.
  void Reserved(Active& a, std::vector<PrefillEvent>* events);
  // D refused: the request leaves this node, the router places it elsewhere.
  void Refused(Active& a, const std::string& reason, std::vector<PrefillEvent>* events);
  void Handle(Active& a, SessionAction action, std::vector<PrefillEvent>* events);
  // A request that ended before its KV moved: tell D to drop any reservation it made.
  void ReleaseReservation(Active& a, std::vector<PrefillEvent>* events);
  void FreeBlocks(Active& a);
  PrefillEvent MakeEvent(const Active& a, PrefillEventKind kind) const;

  StepExecutor executor_;
  KvCache& cache_;
  Transport& transport_;
  const PrefillEngineOptions options_;
  const Clock& clock_;
  Scheduler scheduler_;
  KvLayout layout_;
  std::map<std::string, DecodePeer> peers_;
  std::unordered_map<int64_t, std::unique_ptr<Active>> active_;  // by scheduler id (= session key)
  std::unordered_map<std::string, int64_t> keys_;                // request id -> scheduler id
  int32_t num_transferring_ = 0;
  int64_t next_key_ = 1;
  StepResult result_;
  StepShape last_step_shape_;
  std::function<void(std::vector<PrefillEvent>&)> early_;
  std::mutex mailbox_mu_;
  std::vector<PostedReservation> mailbox_;  // GUARDED_BY(mailbox_mu_)
};

}  // namespace tandem
