// The interface between the HTTP front end and whatever runs the model: the colocated worker in
// this process (worker/local_engine_client.h) or the disaggregated cluster (ClusterClient, which
// sends prompts to prefill nodes and receives tokens from decode nodes). Both are the router
// core (router_core.h) behind a shell that does their I/O, so requests are queued, placed,
// timed out and recorded alike.
//
// Request lifecycle, as seen through the callback:
//
//   Submit() == OK ──▶ zero or more token events ──▶ exactly one final event ──▶ silence
//                                                    (finish_reason != kNone)
//   Submit() != OK ──▶ no events at all
//
// The final event carries the finish reason (kStop, kLength, kAbort after Abort(), kError with
// a non-OK status) and may carry tokens of its own. After it the client drops the callback, so
// whatever the callback captured is released then.
//
// Thread-safety (every implementation must honour these):
//   - Submit, Abort, Ready and Load may be called from any thread, concurrently.
//   - Callbacks run on a thread of the client (never inside Submit), one event at a time per
//     request and in order. They must return quickly and must not block (post the work to the
//     caller's own executor); they may call Abort or Submit.
//   - The client outlives every callback it invokes: its destructor delivers the remaining final
//     events (status Unavailable, "shutting down") before returning, and invokes none afterwards.
//   - A callback that throws fails its request (a final kError event follows, unless the event
//     was final already); the client and every other request go on.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/sampling_params.h"
#include "scheduler/node_view.h"
#include "slo/request_record.h"

namespace tandem {

struct ServingRequest {
  int64_t id = 0;               // assigned by the router; unique among requests in flight
  std::vector<int32_t> prompt;  // token ids, non-empty
  SamplingParams params;        // max_tokens already resolved against the context window
  int64_t arrival_us = 0;       // steady µs (common/clock.h) when the router received it; 0: now
  RequestSlo slo;               // its SLO class and targets (slo/slo_config.h); empty: none
  std::string cache_salt;       // prefix caching: shares cached KV only with equal salts
};

struct InferenceEvent {
  int64_t request_id = 0;
  std::vector<int32_t> tokens;                       // new output tokens, in order (may be empty)
  int64_t emitted_us = 0;                            // steady µs when the client produced this event
  FinishReason finish_reason = FinishReason::kNone;  // kNone: more events follow
  Status status;                                     // non-OK only with kError
  RequestRecord record;                              // the request's whole record; filled on the final event

  bool final() const { return finish_reason != FinishReason::kNone; }
};

using EventCallback = std::function<void(InferenceEvent event)>;

// The router core's decisions since it started (GET /metrics: tandem:placement_decisions_total).
struct RouterDecisionCounts {
  int64_t placed = 0;               // sent to a (prefill, decode) pair; a move after a refusal counts again
  int64_t queued = 0;               // deferred into the router's queue (nothing had room)
  int64_t rejected = 0;             // refused by the policy: no healthy node, never fits, slo_unattainable
  int64_t queue_full = 0;           // refused: the router's queue was full
  int64_t shed = 0;                 // waiting requests failed for a more important newcomer
  int64_t reservation_refused = 0;  // a decode node refused to reserve KV (the request moves on)
  int64_t timed_out = 0;            // first-token or inter-token deadline passed
};

// A snapshot for admission control, placement, operators (GET /v1/load) and tests. Fields a
// client cannot know are -1.
struct LoadInfo {
  int32_t num_requests = 0;         // accepted and not yet given their final event
  int32_t num_queued = 0;           // of those, waiting in the router's queue for a placement
  int32_t num_free_kv_blocks = -1;  // over healthy decode (or colocated) nodes
  int32_t num_total_kv_blocks = -1;
  int64_t num_steps = 0;        // engine steps run so far (colocated worker; 0 otherwise)
  std::vector<NodeView> nodes;  // every node as the router sees it
  RouterDecisionCounts decisions;
};

class InferenceClient {
 public:
  virtual ~InferenceClient() = default;

  // Queues a request. Errors (no events follow): Unavailable when not Ready() or shutting down,
  // AlreadyExists for an id in flight, InvalidArgument / OutOfRange for a request the model
  // can never serve (empty prompt, prompt + max_tokens beyond what it can hold).
  virtual Status Submit(ServingRequest request, EventCallback callback) = 0;

  // Ends a request early; its final event (kAbort) follows unless it already finished. Unknown
  // or finished ids are ignored: the caller cannot know whether the finish raced the abort.
  // `as`: how the request's record ends: kAbort (the client went away, the default) or kStop
  // (the front end matched a stop string and needs no more tokens: a normal finish).
  virtual void Abort(int64_t request_id, FinishReason as = FinishReason::kAbort) = 0;

  // True while the client accepts requests (model loaded, workers connected).
  virtual bool Ready() const = 0;
  // What GET /health says: whether requests can be served now, and, while they can but some
  // node is missing (a cluster that lost a node and routes around it), what is missing.
  struct Health {
    bool serving = false;
    std::string degraded;  // "" when everything is up
  };
  virtual Health GetHealth() const { return {Ready(), ""}; }
  virtual LoadInfo Load() const = 0;
  // The most tokens (prompt + output) one request's KV can ever occupy: the largest (decode)
  // pool. The router caps the context window by it, per request, so it must be cheap. -1 when
  // unknown.
  virtual int64_t MaxSequenceTokens() const = 0;
};

}  // namespace tandem
