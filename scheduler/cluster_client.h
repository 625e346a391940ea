// The disaggregated InferenceClient: the RouterCore's decisions carried out over RPC. This class
// is the I/O shell only: it owns one RpcClient per node, turns what the nodes send into core
// events (converting wire ids and Unix stamps at this edge) and the core's actions into messages.
// The protocol is docs/protocol.md; the request's state machine is in router_core.h.
//
// Messages, router side:
//   to a prefill node:  PrefillRequest (prompt, sampling, the chosen decode node, deadline),
//                       ClusterView (after its Hello: the decode nodes and their addresses),
//                       Abort
//   to a decode node:   Abort (the prefill node reserves the decode node's KV itself)
//   from either:        LoadReport, FirstToken (P), KvReady copy (P), KvReservation{ok=false}
//                       relayed by P (D refused), TokenChunk (D), Error, Abort
//
// Nodes: the peer must answer Hello with the expected role and node id, or it is refused (the
// reason shows in GET /v1/load). A node whose connection drops is marked down (the RpcClient
// notices a dead peer within ConnectionOptions::idle_timeout, 3 s by default); the core fails
// its requests at once and aborts them on their other node; the RpcClient reconnects.
//
// Threading: every public method may be called from any thread. RpcClient callbacks arrive on
// each node's io thread and go straight into the shell (one mutex). Destruction stops: the core
// fails what is in flight and its Aborts go out, the connections close (flushing them), the final
// events are delivered, and no callback runs after the destructor returns.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/rpc/rpc_client.h"
#include "scheduler/cluster_spec.h"
#include "scheduler/inference_client.h"
#include "scheduler/placement_policy.h"
#include "scheduler/router_shell.h"

namespace tandem {

struct ClusterClientOptions {
  ClusterSpec cluster;
  std::string router_id = "router";
  std::string model_name;
  rpc::ConnectionOptions connection;
  rpc::BackoffOptions backoff;
  // Arrival -> first token: a request still waiting after this long (in the router's queue, in a
  // prefill node's queue, on a stuck node) fails with DeadlineExceeded and is aborted on its
  // nodes; the prefill node also gets it as the request's deadline. 0 = no limit.
  std::chrono::milliseconds first_token_timeout{60000};
  // Between two tokens of a decoding request: a decode node that stops sending (a wedged step,
  // SIGSTOP) fails the request with an error event instead of holding the client forever.
  std::chrono::milliseconds inter_token_timeout{60000};
  bool kv_aware_routing = true;  // RouterCoreOptions::kv_aware_routing
  // Decode nodes tried in turn when reservations are refused.
  int max_decode_attempts = 3;
  // Requests waiting in the router's queue for room on a decode node; beyond it, 429.
  int32_t max_queued = 1024;
  // What requests are checked against before placement (the model's vocabulary and window).
  RequestLimits limits;
  std::function<void(const RequestRecord&)> on_finished;  // dispatcher thread; optional
};

class ClusterClient final : public InferenceClient, private NodeLink {
 public:
  // Validates the spec and starts connecting to every node; returns without waiting.
  static Result<std::unique_ptr<ClusterClient>> Create(ClusterClientOptions options,
                                                       std::unique_ptr<PlacementPolicy> policy);
  ~ClusterClient() override;
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  Status Submit(ServingRequest request, EventCallback callback) override;
  void Abort(int64_t request_id, FinishReason as = FinishReason::kAbort) override;
  bool Ready() const override;
  Health GetHealth() const override;
  LoadInfo Load() const override;
  int64_t MaxSequenceTokens() const override;

  // Blocks until Ready() or the timeout (DeadlineExceeded naming the nodes not ready).
  Status WaitReady(std::chrono::milliseconds timeout) const;
  std::vector<NodeView> Nodes() const;

  // Stops the node connections and fails what is in flight (see the header comment). Idempotent.
  void Stop();

  // The request id on the wire, and back (-1 for an id this router did not make).
  static std::string WireId(int64_t id) { return "req-" + std::to_string(id); }
  static int64_t ParseWireId(const std::string& wire_id);

 private:
  ClusterClient(ClusterClientOptions options, std::unique_ptr<PlacementPolicy> policy);
  Status StartNodes();

  // NodeLink (called with the shell's mutex held: only queue).
  void SendPrefill(const tandem::SendPrefill& order) override;
  void SendAbort(const tandem::SendAbort& order) override;
  void SendClusterView(const tandem::SendClusterView& order) override;

  // io threads
  void OnNodeMessage(NodeIndex node, proto::Envelope&& envelope);
  void OnNodeClosed(NodeIndex node, const Status& status);

  const ClusterClientOptions options_;
  std::vector<NodeAddress> addresses_;  // index = NodeIndex: prefill nodes first, then decode
  std::vector<std::unique_ptr<rpc::RpcClient>> rpcs_;
  std::unique_ptr<RouterShell> shell_;
};

}  // namespace tandem
