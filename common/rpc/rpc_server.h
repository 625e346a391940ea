// The accepting end of the control plane (a prefill or decode node, or the router, depending on
// who dials whom). Listens on one TCP address, runs every accepted Connection on its own single
// io thread, and hands application envelopes to the node.
//
// Threading: Start()/Stop() from the owning thread, never from a callback. Callbacks run on the
// server's io thread (see connection.h). ReadyPeers()/FindPeer()/num_connections() are safe from
// any thread; the returned Connection::Ptr may be Send() to from any thread.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/rpc/connection.h"
#include "common/rpc/rpc_options.h"
#include "common/status.h"
#include "proto/tandem.pb.h"

namespace tandem::rpc {

struct RpcServerOptions {
  std::string host = "127.0.0.1";  // an IP literal
  uint16_t port = 0;               // 0 = an ephemeral port; read it back with port()
  proto::Hello hello;              // our identity, sent in every HelloAck
  ConnectionOptions connection;
  Connection::HelloValidator validator;  // optional extra checks of a client's Hello
  size_t max_connections = 1024;         // beyond this, new sockets are closed at once
};

struct RpcServerCallbacks {
  std::function<void(const Connection::Ptr&)> on_peer_ready;
  std::function<void(const Connection::Ptr&, proto::Envelope&&)> on_message;
  // Once for every accepted connection, ready or not (peer_hello() is empty if it never was).
  std::function<void(const Connection::Ptr&, const Status&)> on_peer_closed;
};

class RpcServer {
 public:
  RpcServer(RpcServerOptions options, RpcServerCallbacks callbacks);
  ~RpcServer();  // Stop()s
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Binds, listens and starts the io thread. InvalidArgument for bad options or host;
  // Unavailable when the address cannot be bound; FailedPrecondition when called twice.
  Status Start();

  // Drains every connection (Goodbye, flush, FIN; bounded by drain_timeout), then stops the io
  // thread and joins it. Idempotent. REQUIRES: not called on the io thread.
  void Stop();

  // The bound port (valid after a successful Start()).
  uint16_t port() const { return port_.load(std::memory_order_acquire); }
  std::vector<Connection::Ptr> ReadyPeers() const;
  // A ready connection whose peer said node_id in its Hello, or nullptr.
  Connection::Ptr FindPeer(std::string_view node_id) const;
  size_t num_connections() const;
  uint64_t accepted_total() const { return accepted_total_.load(std::memory_order_relaxed); }

 private:
  void DoAccept();  // io thread
  void OnAccept(const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket);

  const RpcServerOptions options_;
  const RpcServerCallbacks callbacks_;
  std::shared_ptr<spdlog::logger> log_;

  // Declared first so it is destroyed last: connections' sockets and pending handlers need it.
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_timer_;
  std::thread thread_;
  std::atomic<uint16_t> port_{0};
  std::atomic<uint64_t> accepted_total_{0};
  bool started_ = false;               // owning thread only
  std::atomic<bool> stopping_{false};  // set once by Stop()

  mutable std::mutex mu_;
  std::condition_variable cv_;                 // signalled when a connection leaves conns_
  std::unordered_set<Connection::Ptr> conns_;  // GUARDED_BY(mu_); mutated on the io thread
};

}  // namespace tandem::rpc
