// The dialing end of the control plane: one Connection to one server address, re-established
// after every loss with bounded exponential backoff until Stop() (or until the peer refuses our
// Hello, which no retry can fix).
//
// Threading: Start()/Stop()/WaitReady() from the owning thread (never from a callback); Send()
// and the accessors from any thread. Callbacks run on the client's single io thread.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/rpc/connection.h"
#include "common/rpc/rpc_options.h"
#include "common/status.h"
#include "proto/tandem.pb.h"

namespace tandem::rpc {

struct RpcClientOptions {
  std::string host = "127.0.0.1";  // IP literal, or a name resolved once, blocking, in Start()
  uint16_t port = 0;
  proto::Hello hello;  // our identity; protocol_version 0 means kProtocolVersion
  ConnectionOptions connection;
  BackoffOptions backoff;
  Connection::HelloValidator validator;  // optional checks of the server's Hello
};

struct RpcClientCallbacks {
  std::function<void(const proto::Hello& peer)> on_ready;  // after every successful handshake
  std::function<void(proto::Envelope&&)> on_message;
  // When a ready connection is lost (reconnection follows unless stopped) and when the client
  // gives up (refused, or backoff.max_attempts reached); not for each failed retry.
  std::function<void(const Status&)> on_disconnected;
};

class RpcClient {
 public:
  RpcClient(RpcClientOptions options, RpcClientCallbacks callbacks);
  ~RpcClient();  // Stop()s
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Validates options, resolves the address, starts the io thread and the first connection
  // attempt; returns without waiting for it.
  Status Start();

  // Blocks until ready (OK), until the client gives up (the final Status), or for `timeout`
  // (DeadlineExceeded carrying the last error). REQUIRES: not on the io thread.
  Status WaitReady(std::chrono::milliseconds timeout);

  // See Connection::Send. Unavailable while (re)connecting: the caller decides whether to wait,
  // queue elsewhere, or fail the request — silently buffering across reconnects could deliver a
  // request to a restarted peer that no longer knows its context.
  Status Send(proto::Envelope envelope);

  // Drains the connection (bounded by drain_timeout), stops retrying, joins the io thread.
  // Idempotent. REQUIRES: not on the io thread.
  void Stop();

  bool ready() const;
  bool gave_up() const;
  Status last_status() const;  // why the last connection attempt or connection ended
  // Connection incarnations started so far (1 after the first attempt).
  uint64_t generation() const { return conn_ ? conn_->generation() : 0; }
  proto::Hello peer_hello() const { return conn_ ? conn_->peer_hello() : proto::Hello(); }
  // The underlying connection, for stats; null before Start().
  const Connection::Ptr& connection() const { return conn_; }

 private:
  void OnConnectionReady(const Connection::Ptr& conn);                         // io thread
  void OnConnectionClosed(const Connection::Ptr& conn, const Status& status);  // io thread

  const RpcClientOptions options_;
  const RpcClientCallbacks callbacks_;
  std::shared_ptr<spdlog::logger> log_;

  // Declared first so it is destroyed last (see RpcServer).
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  boost::asio::steady_timer backoff_timer_;
  boost::asio::ip::tcp::endpoint endpoint_;
  Connection::Ptr conn_;  // set once in Start(), then only used through its thread-safe API
  std::thread thread_;
  bool started_ = false;               // owning thread only
  std::atomic<bool> stopping_{false};  // set once by Stop()
  int failures_ = 0;                   // io thread: failed attempts since the last ready

  mutable std::mutex mu_;
  std::condition_variable cv_;  // signalled on ready, close, give-up and stop
  bool ready_ = false;          // GUARDED_BY(mu_)
  bool gave_up_ = false;        // GUARDED_BY(mu_)
  bool closed_ = true;          // GUARDED_BY(mu_): no incarnation is live
  bool stopped_ = false;        // GUARDED_BY(mu_)
  Status last_status_ = UnavailableError("not connected yet");  // GUARDED_BY(mu_)
};

}  // namespace tandem::rpc
