// Shared helpers of the rpc tests: fast options, a thread-safe recorder with bounded waits, and
// raw blocking sockets that play misbehaving peers. Everything binds to 127.0.0.1 only.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/rpc/frame_codec.h"
#include "common/rpc/rpc_options.h"
#include "common/status.h"
#include "proto/tandem.pb.h"

namespace tandem::rpc::testing {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

inline ConnectionOptions FastOptions() {
  ConnectionOptions o;
  o.connect_timeout = milliseconds(1000);
  o.hello_timeout = milliseconds(300);
  o.heartbeat_interval = milliseconds(50);
  o.idle_timeout = milliseconds(1000);
  o.write_timeout = milliseconds(1000);
  o.drain_timeout = milliseconds(300);
  return o;
}

inline BackoffOptions FastBackoff() {
  BackoffOptions b;
  b.initial = milliseconds(10);
  b.max = milliseconds(80);
  return b;
}

inline proto::Hello MakeHello(proto::Role role, const std::string& node_id) {
  proto::Hello h;
  h.set_role(role);
  h.set_node_id(node_id);
  h.set_kv_layout_hash(0x1234abcdULL);
  return h;
}

inline proto::Envelope MakeAbort(const std::string& request_id, const std::string& reason = "") {
  proto::Envelope env;
  env.mutable_abort()->set_request_id(request_id);
  env.mutable_abort()->set_reason(reason);
  return env;
}

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// For conditions no Recorder is notified about (queue depth, peer lists): polls every ms.
inline bool PollUntil(const std::function<bool()>& pred, milliseconds bound = milliseconds(3000)) {
  const auto deadline = Clock::now() + bound;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

// Everything callbacks observe, guarded by one mutex; tests wait on predicates with a bound.
class Recorder {
 public:
  void AddMessage(proto::Envelope env) {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(std::move(env));
    cv_.notify_all();
  }
  void AddClosed(const Status& s) {
    std::lock_guard<std::mutex> lock(mu_);
    closed_.push_back(s);
    cv_.notify_all();
  }
  void AddReady(const proto::Hello& h) {
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(h);
    cv_.notify_all();
  }
  // Waits until pred() holds (evaluated under the lock) or the bound passes.
  bool WaitFor(const std::function<bool()>& pred, milliseconds bound = milliseconds(3000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, bound, pred);
  }
  bool WaitMessages(size_t n, milliseconds bound = milliseconds(3000)) {
    return WaitFor([&] { return messages_.size() >= n; }, bound);
  }
  bool WaitClosed(size_t n, milliseconds bound = milliseconds(3000)) {
    return WaitFor([&] { return closed_.size() >= n; }, bound);
  }
  bool WaitReady(size_t n, milliseconds bound = milliseconds(3000)) {
    return WaitFor([&] { return ready_.size() >= n; }, bound);
  }
  std::vector<proto::Envelope> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  std::vector<Status> closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }
  std::vector<proto::Hello> ready() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ready_;
  }

  // Direct access for predicates passed to WaitFor (which already hold the lock).
  const std::vector<proto::Envelope>& messages_locked() const { return messages_; }
  const std::vector<Status>& closed_locked() const { return closed_; }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<proto::Envelope> messages_;
  std::vector<Status> closed_;
  std::vector<proto::Hello> ready_;
};

// A blocking socket whose reads give up after `read_timeout` instead of hanging the test.
class RawPeer {
 public:
  explicit RawPeer(milliseconds read_timeout = milliseconds(3000)) : socket_(io_) {
    read_timeout_ = read_timeout;
  }
  bool Connect(uint16_t port) {
    boost::system::error_code ec;
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    if (ec) return false;
    timeval tv{};
    tv.tv_sec = read_timeout_.count() / 1000;
    tv.tv_usec = (read_timeout_.count() % 1000) * 1000;
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return true;
  }
  bool WriteBytes(const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes), ec);
    return !ec;
  }
  bool WriteEnvelope(const proto::Envelope& env) {
    auto frame = EncodeFrame(env, kDefaultMaxFrameBytes);
    return frame.ok() && WriteBytes(*frame);
  }
  // The next frame, or nullopt on EOF, error or timeout (then eof() tells which).
  std::optional<proto::Envelope> ReadEnvelope() {
    char header[kFrameHeaderBytes];
    boost::system::error_code ec;
    boost::asio::read(socket_, boost::asio::buffer(header), ec);
    if (ec) {
      eof_ = ec == boost::asio::error::eof;
      return std::nullopt;
    }
    std::string body(DecodeFrameLength(std::string_view(header, sizeof(header))), '\0');
    boost::asio::read(socket_, boost::asio::buffer(body), ec);
    if (ec) return std::nullopt;
    proto::Envelope env;
    if (!env.ParseFromString(body)) return std::nullopt;
    return env;
  }
  // Reads and discards until EOF; true if EOF (not a timeout or reset) ended it.
  bool ReadUntilEof() {
    char buf[4096];
    while (true) {
      boost::system::error_code ec;
      socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec) return ec == boost::asio::error::eof;
    }
  }
  // Sends Hello (our version unless overridden) and returns the HelloAck envelope.
  std::optional<proto::Envelope> Handshake(const std::string& node_id, uint32_t version = 0) {
    proto::Envelope hello;
    hello.set_protocol_version(version == 0 ? kProtocolVersion : version);
    *hello.mutable_hello() = MakeHello(proto::ROLE_ROUTER, node_id);
    hello.mutable_hello()->set_protocol_version(version == 0 ? kProtocolVersion : version);
    if (!WriteEnvelope(hello)) return std::nullopt;
    return ReadEnvelope();
  }
  bool eof() const { return eof_; }
  boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  milliseconds read_timeout_;
  bool eof_ = false;
};

// Listens on 127.0.0.1 but never accepts: the kernel completes TCP handshakes into the backlog,
// so a client connects fine and then hears nothing — a peer that "accepts but never says hello".
class SilentListener {
 public:
  SilentListener() : acceptor_(io_) {
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen(16);
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

// A port on 127.0.0.1 with nothing listening (bound then released; nobody else binds loopback
// ports in this test binary).
inline uint16_t UnusedPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io);
  boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
  a.open(ep.protocol());
  a.bind(ep);
  return a.local_endpoint().port();
}

}  // namespace tandem::rpc::testing
