// The decode node process: one RpcServer that the routers (Abort; we send TokenChunk, Error,
// LoadReport) and the prefill nodes (ReserveKv -> KvReservation, KvReady, Abort) connect to. The
// prefill node names the router in its ReserveKv; the tokens go to that router's connection. Our HelloAck carries the
// UCX worker address and the KV pool's rkey/base/size/blocks and layout hash; a prefill node with another layout hash
// is refused at Hello. ONE engine thread owns the Transformer, the KvCache, the DecodeEngine and the UCX worker, which
// it progresses every iteration, idle or not (UCX 1.13 tcp and sm puts into application memory need the target's
// progress). io threads only post closures into a mutex-guarded inbox.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>

#include "common/rpc/rpc_server.h"
#include "common/status.h"
#include "decode_node/decode_engine.h"
#include "node/node_loop.h"
#include "node/node_runtime.h"

namespace tandem {

struct DecodeServiceOptions {
  NodeRuntimeOptions runtime;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string node_id = "decode-0";
  DecodeEngineOptions engine;
  std::chrono::milliseconds load_report_interval{100};
};

class DecodeService {
 public:
  explicit DecodeService(DecodeServiceOptions options);
  ~DecodeService();  // Stop()s
  DecodeService(const DecodeService&) = delete;
  DecodeService& operator=(const DecodeService&) = delete;

  Status Start();
  void Stop();  // idempotent
  uint16_t port() const { return server_ ? server_->port() : 0; }
  uint16_t metrics_port() const { return rt_ ? rt_->metrics_port() : 0; }

 private:
  void Post(std::function<void()> fn) { loop_.Post(std::move(fn)); }
  bool Iterate();  // one round of the engine thread (NodeLoop); whether a step ran
  void OnMessage(const rpc::Connection::Ptr& conn, proto::Envelope&& env);         // engine thread
  void OnReserve(const rpc::Connection::Ptr& prefill, const proto::ReserveKv& m);  // engine thread
  // A router or prefill connection closed: what only it could finish or receive is ended
  // (requests streaming to a router that is gone are aborted; reservations of a prefill node
  // that is gone drain and are freed), so no block waits for a peer that will not come back.
  void OnPeerClosed(const rpc::Connection::Ptr& conn);  // engine thread
  rpc::Connection::Ptr FindRouter(const std::string& router_id) const;
  void Dispatch(std::vector<DecodeEvent>& events);
  void SendError(const rpc::Connection::Ptr& conn, const std::string& id, const Status& s);
  void SendLoadReport();

  DecodeServiceOptions options_;
  std::unique_ptr<NodeRuntime> rt_;
  std::unique_ptr<DecodeEngine> engine_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::map<std::string, rpc::Connection::Ptr> routers_;   // request -> router; engine thread
  std::map<std::string, rpc::Connection::Ptr> prefills_;  // request -> the prefill node that reserved
  // Requests a router aborted before their ReserveKv arrived (the Abort comes straight from the
  // router, the ReserveKv through the prefill node, so the Abort can overtake it): the late
  // ReserveKv is refused instead of reserving for, and decoding, a request nobody wants. Per
  // router connection (a restarted router reuses ids), forgotten after kTombstoneUs. Engine thread.
  struct Tombstones {
    std::deque<std::pair<int64_t, std::string>> order;  // (when, id), oldest first
    std::unordered_set<std::string> ids;
  };
  std::map<rpc::Connection::Ptr, Tombstones> aborted_early_;

  std::vector<DecodeEvent> events_;  // engine thread; reused across iterations
  NodeLoop loop_;
  std::unique_ptr<LoadReporter> reporter_;  // engine thread
};

}  // namespace tandem
