// The prefill node process: an RpcServer for the routers, one RpcClient per decode node (Hello
// carries our UCX worker address; the decode node's HelloAck carries its worker address, pool
// rkey/base/size and layout hash, which we check and Connect() the transport to), and ONE engine
// thread that owns the Transformer, the KvCache, the PrefillEngine and the UCX worker. io threads
// never touch those: they only post closures into the NodeLoop's inbox.
//
// Where the decode nodes are: `--decode-node` flags (optional), and the ClusterView every router
// sends after its Hello: decode nodes we do not know yet get a client then. The LoadReport (every
// load_report_interval, to every router) lists the decode nodes whose KV pool we reach, and the
// router places requests only on such pairs.
//
// Per request: PrefillRequest from a router -> PrefillEngine; its events go out as ReserveKv (to
// the decode node, naming the router), FirstToken (router), KvReady (decode node, and a copy to
// the router), Abort (decode node), a relayed KvReservation refusal or an Error (router).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/rpc/rpc_client.h"
#include "common/rpc/rpc_server.h"
#include "common/rpc/tls.h"
#include "common/status.h"
#include "node/node_loop.h"
#include "node/node_runtime.h"
#include "prefill_node/prefill_engine.h"

namespace tandem {

struct DecodeNodeAddress {
  std::string node_id;
  std::string host;
  uint16_t port = 0;
};
// "ID=HOST:PORT" -> address; InvalidArgument naming the malformed part.
Result<DecodeNodeAddress> ParseDecodeNodeAddress(const std::string& text);

struct PrefillServiceOptions {
  NodeRuntimeOptions runtime;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string node_id = "prefill-0";
  std::vector<DecodeNodeAddress> decode_nodes;  // more may come from the routers' ClusterView
  PrefillEngineOptions engine;
  std::chrono::milliseconds load_report_interval{100};
};

class PrefillService {
 public:
  explicit PrefillService(PrefillServiceOptions options);
  ~PrefillService();  // Stop()s
  PrefillService(const PrefillService&) = delete;
  PrefillService& operator=(const PrefillService&) = delete;

  // Loads the model, allocates the KV pool, starts the server, the decode clients and the
  // engine thread. Returns once the server listens (decode nodes connect in the background).
  Status Start();
  void Stop();  // idempotent
  uint16_t port() const { return server_ ? server_->port() : 0; }
  uint16_t metrics_port() const { return rt_ ? rt_->metrics_port() : 0; }

 private:
  struct DecodeLink {
    DecodeNodeAddress address;
    std::unique_ptr<rpc::RpcClient> client;
    bool connected = false;  // engine thread: the transport reaches its pool
  };

  void Post(std::function<void()> fn) { loop_.Post(std::move(fn)); }
  bool Iterate();  // one round of the engine thread (NodeLoop); whether a step ran
  void Dispatch(std::vector<PrefillEvent>& events);
  void OnRouterMessage(const rpc::Connection::Ptr& conn, proto::Envelope&& env);  // engine thread
  void OnClusterView(const proto::ClusterView& view);                             // engine thread
  // A router's connection closed: its requests are aborted here (nobody would receive them).
  void OnRouterClosed(const rpc::Connection::Ptr& conn);  // engine thread
  // Adds a client for a decode node and starts it (engine thread, or Start()).
  Status AddDecodeNode(const DecodeNodeAddress& address);
  void OnDecodeReady(size_t index, const proto::Hello& hello);  // engine thread
  void OnDecodeLost(size_t index, const Status& status);        // engine thread
  DecodeLink* FindDecode(const std::string& node_id);
  void SendToDecode(const std::string& node_id, proto::Envelope env);
  void SendLoadReport();

  PrefillServiceOptions options_;
  std::unique_ptr<NodeRuntime> rt_;
  std::unique_ptr<PrefillEngine> engine_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::string cluster_secret_;                            // from --cluster-secret-file; "" for none
  std::shared_ptr<rpc::TlsContext> tls_;                  // from --tls-*; null for plain TCP
  proto::Hello hello_;                                    // ours, for the decode clients
  std::vector<std::unique_ptr<DecodeLink>> decodes_;      // engine thread; index = peer id - 1
  std::unordered_map<std::string, size_t> decode_index_;  // engine thread; node id -> index
  std::map<std::string, rpc::Connection::Ptr> routers_;   // request -> router; engine thread

  std::vector<PrefillEvent> events_;  // engine thread; reused across iterations
  NodeLoop loop_;
  std::unique_ptr<LoadReporter> reporter_;  // engine thread
};

}  // namespace tandem
