// The router's decisions, without I/O: a pending queue, one NodeView per node, placement and
// admission, and every request's state machine and RequestRecord. Each call takes the event and
// `now` and appends the actions the shell must carry out (send to a node, deliver an event to
// the client); nothing here reads a clock, touches a socket or owns a thread, so the same code
// runs behind the cluster's RPC shell (ClusterClient), the colocated worker's engine shell
// (worker/LocalEngineClient) and, later, the simulator.
//
// One request:
//
//   Submit ──policy──▶ Place(P, D): SendPrefill(P, D) ──────────────▶ kPrefilling
//          │           Defer:  kQueued (router queue, FCFS) ──loads change──▶ policy again
//          └─────────▶ Reject: Submit's error, no events
//   kPrefilling ── P's FirstToken ──▶ first token event; kDecoding (finished: final event)
//               ── P relays D's refusal ──▶ policy without the refusers (another D, maybe another
//                                           P); none left: final kError ResourceExhausted
//   kDecoding   ── D's tokens ──▶ token events; the finished chunk is the final event
//   any         ── node error, node down, deadline, inter-token timeout, Abort, Shutdown
//                  ──▶ final event; SendAbort to the placed nodes that may still hold it
// Tokens that overtake the FirstToken (they come from D over another connection) are held until
// it arrives, so the client sees tokens in order.
//
// Charges between reports: a placement adds its prompt tokens to P's queue until P's next report
// (which then includes them), and its blocks to D until D's first report after the request's
// first token (D reserved them before that token was sampled, so that report counts them); so a
// burst does not all land on one node, and a queue of prompts on P cannot overbook D.
//
// Queue bounds: at most max_queued requests wait for a placement (beyond, ResourceExhausted:
// 429, after shedding a less important class's request if there is one); and at most a class's
// own max_queued (RequestSlo::max_queued, from --slo-config) of one SLO class (beyond,
// Unavailable with reason "queue_full": 503 with Retry-After; nothing is shed for it, and the
// other classes still queue).
//
// Deadlines: a request with no first token `first_token_timeout` after arrival (waiting in the
// router queue, in P's queue, or on a stuck node) fails with DeadlineExceeded; a decoding request
// with no token for `inter_token_timeout` (a wedged or stopped decode node) too.
//
// Threading: none of its own. The shell serialises every call (one mutex).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/status.h"
#include "engine/request_rules.h"
#include "scheduler/inference_client.h"
#include "scheduler/node_view.h"
#include "scheduler/placement_policy.h"

namespace tandem {

struct RouterCoreOptions {
  int max_decode_attempts = 3;
  int64_t first_token_timeout_us = 60'000'000;  // arrival -> first token; 0: none
  int64_t inter_token_timeout_us = 60'000'000;  // between two tokens while decoding; 0: none
  int32_t max_queued = 1024;                    // requests waiting for a placement; beyond: ResourceExhausted (429)
  // Place by what the nodes' prefix caches hold (HashPrefix; their reports). false: the policy
  // never sees a prompt's block hashes (the caches still serve what happens to land on them).
  bool kv_aware_routing = true;
  // What every request is checked against (ValidateRequest); fields 0 are not checked.
  RequestLimits limits;
  // false: no event for a request's tokens until its final one (which carries the record):
  // the simulator wants records only, and skips building an event per token.
  bool token_events = true;
  // false: records keep their first and last token stamps and the count, not every stamp (the
  // planner needs TTFT and TPOT only; inter-token latencies need them all).
  bool token_times = true;
};

struct NodeSpec {
  std::string id;
  NodeRole role = NodeRole::kDecode;
};

// What nodes report about a request, with stamps already on the router's clock.
struct FirstTokenReport {
  int32_t token = -1;
  bool finished = false;  // nothing left for the decode node (EOS, max_tokens == 1)
  FinishReason finish_reason = FinishReason::kNone;
  int64_t prefill_start_us = 0;
  int64_t prefill_end_us = 0;
  int32_t cached_tokens = 0;  // prompt tokens the prefix cache held
};
struct TransferReport {
  int64_t bytes = 0;
  int64_t start_us = 0;
  int64_t end_us = 0;
};
struct TokensReport {
  std::vector<int32_t> tokens;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  int64_t decode_admitted_us = 0;  // 0: not in this report
  int32_t preemptions = 0;         // with `finished`: times the node preempted it
  // The KV transfer as the decode node saw it (bytes 0: not in this report); fills the record
  // when the prefill node's own KvReady copy has not arrived first.
  TransferReport transfer;
};

// The shell's work. Sends are queued on connections (never block); events are delivered on the
// shell's dispatcher thread, in the order they were produced.
struct SendPrefill {
  NodeIndex prefill = -1;
  NodeIndex decode = -1;
  std::shared_ptr<const ServingRequest> request;
  int64_t deadline_us = 0;  // router clock; 0: none
};
struct SendAbort {
  NodeIndex node = -1;
  int64_t request_id = 0;
  std::string reason;
};
struct SendClusterView {
  NodeIndex node = -1;  // a prefill node: tell it where the decode nodes are
};
struct DeliverEvent {
  InferenceEvent event;
};
using RouterAction = std::variant<SendPrefill, SendAbort, SendClusterView, DeliverEvent>;
using RouterActions = std::vector<RouterAction>;

class RouterCore {
 public:
  RouterCore(std::vector<NodeSpec> nodes, std::unique_ptr<PlacementPolicy> policy, RouterCoreOptions options);
  ~RouterCore();
  RouterCore(const RouterCore&) = delete;
  RouterCore& operator=(const RouterCore&) = delete;

  // --- requests ---
  // Accepts (placed or queued: events follow) or refuses (no events): InvalidArgument /
  // OutOfRange for what can never be served, Unavailable when no node of a role is healthy or
  // the router is shutting down, ResourceExhausted when the queue is full, Unavailable with
  // reason "queue_full" when its SLO class's queue is, AlreadyExists for an id in flight.
  // REQUIRES: request->arrival_us set; seed set unless greedy.
  Status Submit(std::shared_ptr<const ServingRequest> request, int64_t now, RouterActions* out);
  // Ends a request (see InferenceClient::Abort for `as`); unknown ids are ignored.
  void Abort(int64_t request_id, FinishReason as, int64_t now, RouterActions* out);
  // Fails a request (e.g. its event callback threw); unknown ids are ignored.
  void Fail(int64_t request_id, const Status& why, int64_t now, RouterActions* out);
  // Deadlines, inter-token timeouts, and another look at the queue.
  void Tick(int64_t now, RouterActions* out);
  // Fails everything in flight (Unavailable) and refuses new requests from now on.
  void Shutdown(int64_t now, RouterActions* out);

  // --- nodes ---
  // The handshake succeeded; `block_size_tokens` of a pool owner (0 for a prefill node), and
  // whether its pool reserves prompt + max_tokens per request (NodeView::reserves_output_blocks).
  void OnNodeConnected(NodeIndex node, uint32_t block_size_tokens, int64_t now, RouterActions* out,
                       bool reserves_output_blocks = false);
  // A handshake was refused (wrong role or id): the node stays unusable, with this reason.
  void OnNodeRefused(NodeIndex node, const Status& why);
  void OnNodeDisconnected(NodeIndex node, const Status& why, int64_t now, RouterActions* out);
  void OnLoadReport(NodeIndex node, NodeLoadReport report, int64_t now, RouterActions* out);

  // --- what nodes say about a request (stale or misdirected reports are ignored) ---
  void OnFirstToken(NodeIndex node, int64_t request_id, const FirstTokenReport& report, int64_t now,
                    RouterActions* out);
  void OnTokens(NodeIndex node, int64_t request_id, const TokensReport& report, int64_t now, RouterActions* out);
  void OnKvReady(NodeIndex node, int64_t request_id, const TransferReport& report);
  // P relays D's refusal to reserve KV: the request left P; place it elsewhere.
  void OnReservationRefused(NodeIndex node, int64_t request_id, const std::string& decode_node,
                            const std::string& reason, int64_t now, RouterActions* out);
  void OnNodeError(NodeIndex node, int64_t request_id, const Status& status, int64_t now, RouterActions* out);

  // --- views ---
  // Every node healthy, and every prefill node reaching every decode node.
  bool Ready() const;
  // Requests can be placed: some healthy prefill-capable node reaches some healthy decode node.
  // A cluster that lost a node is Serving but not Ready (degraded).
  bool Serving() const;
  // Why not Ready(): the nodes that are not, with their state and last error.
  std::string NotReadyReason() const;
  bool shutting_down() const { return shutting_down_; }
  LoadInfo Load() const;
  int64_t MaxSequenceTokens() const;  // -1 while no decode-capable node is healthy
  const std::vector<NodeView>& nodes() const { return nodes_; }
  NodeIndex FindNode(const std::string& id) const;  // -1 if unknown
  int32_t num_in_flight() const { return static_cast<int32_t>(flights_.size()); }
  int64_t next_deadline_us() const;  // the earliest time Tick has work; 0: none
  // Requests of SLO class `class_name` ("" for those without one) waiting for a placement.
  int32_t num_queued_in_class(const std::string& class_name) const;

 private:
  struct Flight;
  enum class Outcome { kPlaced, kQueued, kFailed };

  // The chain hashes of `f`'s prompt blocks for the nodes' prefix caches (none reported: none).
  void HashPrefix(Flight& f) const;
  // Folds a report's prefix-cache changes into the node's cached_blocks.
  static void ApplyCacheEvents(NodeView& n, NodeLoadReport& report);

  // Asks the policy for `f` and acts on the answer: sent, queued (a deferral while the queue has
  // room), or failed with `refused` (the caller ends the request).
  Outcome TryPlace(Flight& f, int64_t now, RouterActions* out, Status* refused);
  void Send(Flight& f, NodeIndex p, NodeIndex d, int64_t now, RouterActions* out);
  PlacementRequest PlacementFor(const Flight& f, int64_t now) const;
  // NodeView::placed bookkeeping: a placement adds its prompt to P and its sequence to D; the
  // first token takes it off P; its end (or a move elsewhere) takes it off both.
  void AddPlacedWork(Flight& f, int64_t prefill_tokens);
  void ReleasePlacedWork(Flight& f, bool decode_too);
  void DrainQueue(int64_t now, RouterActions* out);
  void Enqueue(Flight& f, int64_t now);
  // Takes a kQueued flight off the queue (and its class's count).
  void Dequeue(const Flight& f);
  // The refusal when `f`'s SLO class already has its max_queued requests waiting; OK otherwise.
  Status ClassQueueRoom(const Flight& f) const;
  // The queue is full: when `f` is more important (a smaller SLO priority) than the least
  // important request waiting (the latest among equals), that one fails with ResourceExhausted
  // (429: lower-priority classes are shed first) and there is room for `f`. Whether there is.
  bool ShedForRoom(const Flight& f, int64_t now, RouterActions* out);
  void Uncharge(Flight& f);
  void Emit(Flight& f, const std::vector<int32_t>& tokens, int64_t now, RouterActions* out);
  // The final event; SendAbort to the placed nodes but `except` (kAbortAll: no exception,
  // kAbortNone: no Abort at all); removes the flight.
  static constexpr NodeIndex kAbortAll = -1;
  static constexpr NodeIndex kAbortNone = -2;
  void Finish(int64_t request_id, FinishReason reason, Status status, std::vector<int32_t> tokens, NodeIndex except,
              int64_t now, RouterActions* out);
  void ReplayHeld(int64_t request_id, int64_t now, RouterActions* out);

  std::vector<NodeView> nodes_;
  std::unordered_map<std::string, NodeIndex> node_index_;
  const std::unique_ptr<PlacementPolicy> policy_;
  const RouterCoreOptions options_;
  std::unordered_map<int64_t, std::unique_ptr<Flight>> flights_;
  std::deque<int64_t> queue_;  // kQueued flights, in arrival order
  // queue_'s flights by SLO class name (entries > 0 only).
  std::unordered_map<std::string, int32_t> queued_by_class_;
  bool shutting_down_ = false;
  RouterDecisionCounts decisions_;
};

}  // namespace tandem
