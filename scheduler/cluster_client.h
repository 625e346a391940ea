// The disaggregated InferenceClient: the router's side of the request protocol
// (docs: the ISSUE4 protocol; summary below). The HTTP layer cannot tell it from the colocated
// LocalEngineClient.
//
// One request (wire id "req-<id>"):
//   Submit ── place (P, D) with the PlacementPolicy over healthy nodes' loads
//          ── PrefillRequest ──▶ D             phase kReserving
//   D ── KvReservation{ok, block_ids} ──▶      phase kPrefilling; PrefillRequest(+blocks) ──▶ P
//      ── KvReservation{ok=false} ──▶          try the next D (the policy without the refusers);
//                                              none left: final kError ResourceExhausted
//   P ── FirstToken ──▶                        first token event (TTFT); phase kDecoding
//                                              (finished: final event, Abort ──▶ D)
//   D ── TokenChunk ──▶                        token events; the last one is final
//   either ── Error ──▶                        final kError, Abort ──▶ both
//   Abort(id) ──▶                              Abort ──▶ P and D, final kAbort at once
//                                              (still reserving: to D alone, marked
//                                              prefill_not_asked, so D frees without a drain)
// TokenChunks that overtake the FirstToken (they come over another connection) are held until
// it arrives, so the client sees tokens in order.
//
// Nodes: one RpcClient per configured node (Hello role ROLE_ROUTER; the peer must answer with
// the expected role and node id, or it is refused and never retried). Node state:
//   kConnecting ──handshake──▶ kReady (reported once its first LoadReport arrived)
//   kReady ──connection lost──▶ kDown ──RpcClient reconnects──▶ kReady ...
// A node going down fails every request placed on it with a kError event (Unavailable) at once
// (a prefill node: those it has not yet reported KvReady for, i.e. still prefilling or moving KV)
// (the RpcClient notices a dead peer within ConnectionOptions::idle_timeout, 3 s by default) and
// sends Abort to the request's other node so no KV block leaks there. Placement only uses nodes
// that are ready and have reported. Ready() is true only when every configured node is.
//
// Between LoadReports the router charges its own placements to its copy of the load (prompt
// tokens to P's queue, blocks to D's free count) so a burst does not all land on one node; the
// next report replaces the estimate.
//
// Threading: Submit, Abort, Ready, Load, Snapshot may be called from any thread. RpcClient
// callbacks arrive on each node's io thread; all state is guarded by one mutex (mu_), never held
// while sending is blocked (Send only queues) nor while invoking user callbacks. User callbacks
// run on one dispatcher thread owned by this class, in the order the events were produced, so
// per-request order holds across nodes and no callback runs inside Submit.
// Destruction stops the RpcClients first (no io callbacks after that), then delivers the final
// kError (Unavailable, "shutting down") of every request still in flight, then joins the
// dispatcher: no callback runs after the destructor returns.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/rpc/rpc_client.h"
#include "scheduler/cluster_spec.h"
#include "scheduler/inference_client.h"
#include "scheduler/placement_policy.h"

namespace tandem {

// What the router logs per finished request (also handed to ClusterClientOptions::on_finished).
struct RequestRecord {
  int64_t id = 0;
  std::string prefill_node_id;
  std::string decode_node_id;  // the one that reserved its KV ("" if none did)
  int32_t prompt_tokens = 0;
  int32_t output_tokens = 0;
  int32_t decode_attempts = 0;  // decode nodes asked for a reservation
  FinishReason finish_reason = FinishReason::kNone;
  Status status;
  RequestTimeline timeline;   // router-side NowMicros() stamps: arrival, scheduled (sent to P),
                              // first token (FirstToken received), each token, finish
  int64_t kv_bytes = -1;      // from a KvReady the nodes forward to the router; -1 = unknown
  int64_t kv_transfer_us = -1;
};

struct ClusterClientOptions {
  ClusterSpec cluster;
  std::string router_id = "router";
  std::string model_name;
  rpc::ConnectionOptions connection;
  rpc::BackoffOptions backoff;
  // A request that is still waiting for D's reservation or P's first token after this long is
  // failed (DeadlineExceeded) and aborted on both nodes: a live but stuck node must not hold a
  // client forever. 0 = no limit.
  std::chrono::milliseconds first_token_timeout{60000};
  // Decode nodes asked in turn when reservations are refused.
  int max_decode_attempts = 3;
  std::function<void(const RequestRecord&)> on_finished;  // dispatcher thread; optional
};

class ClusterClient final : public InferenceClient {
 public:
  enum class NodeState { kConnecting, kReady, kDown };
  struct NodeStatus {
    std::string id;
    bool prefill = false;
    NodeState state = NodeState::kConnecting;
    bool reported = false;
    NodeLoad load;
    std::string last_error;
  };

  // Validates the spec and starts connecting to every node; returns without waiting.
  static Result<std::unique_ptr<ClusterClient>> Create(ClusterClientOptions options,
                                                       std::unique_ptr<PlacementPolicy> policy);
  ~ClusterClient() override;
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  Status Submit(ServingRequest request, EventCallback callback) override;
  void Abort(int64_t request_id) override;
  bool Ready() const override;
  LoadInfo Load() const override;
  int64_t MaxSequenceTokens() const override;

  // Blocks until Ready() or the timeout (DeadlineExceeded naming the nodes not ready).
  Status WaitReady(std::chrono::milliseconds timeout) const;
  std::vector<NodeStatus> Snapshot() const;

  // Stops the node connections and fails what is in flight (see the header comment). Idempotent.
  void Stop();

  static std::string WireId(int64_t id) { return "req-" + std::to_string(id); }

  struct Node;
  struct Flight;

 private:
  ClusterClient(ClusterClientOptions options, std::unique_ptr<PlacementPolicy> policy);
  Status StartNodes();

  // io threads
  void OnNodeReady(size_t node, const proto::Hello& hello);
  void OnNodeMessage(size_t node, proto::Envelope&& envelope);
  void OnNodeDisconnected(size_t node, const Status& status);
  void OnReservation(size_t node, const proto::KvReservation& msg);
  void OnFirstToken(size_t node, const proto::FirstToken& msg);
  void OnTokenChunk(size_t node, const proto::TokenChunk& msg);
  void OnNodeError(size_t node, const std::string& request_id, const Status& status);

  // REQUIRES mu_. Chooses the next decode node for `f` and sends it the PrefillRequest;
  // an error means none could take it (the caller fails the request).
  Status PlaceLocked(Flight& f);
  Status SendToNode(size_t node, proto::Envelope envelope);  // never holds mu_ itself
  // REQUIRES mu_. Queues the final event, removes the flight, sends Abort to `abort_nodes`.
  void FinishLocked(const std::string& wire_id, FinishReason reason, Status status,
                    std::vector<int32_t> tokens, const std::vector<int>& abort_nodes);
  void EmitLocked(Flight& f, std::vector<int32_t> tokens);
  void EnqueueLocked(std::function<void()> work);
  void DispatchLoop();
  void CheckTimeouts();

  const ClusterClientOptions options_;
  const std::unique_ptr<PlacementPolicy> policy_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::unique_ptr<Node>> nodes_;  // fixed after Create; prefill first, then decode

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // ready changes; dispatcher work
  std::unordered_map<std::string, std::unique_ptr<Flight>> flights_;  // GUARDED_BY(mu_)
  std::deque<std::function<void()>> work_;                            // GUARDED_BY(mu_)
  bool stopping_ = false;                                             // GUARDED_BY(mu_)
  bool dispatcher_exit_ = false;                                      // GUARDED_BY(mu_)
  std::thread dispatcher_;
  std::once_flag stop_once_;
};

std::string_view NodeStateName(ClusterClient::NodeState state);

}  // namespace tandem
