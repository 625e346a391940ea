// One control-plane TCP connection: framing, handshake, heartbeats, bounded outgoing queue and
// orderly close, as an explicit state machine. RpcServer and RpcClient own these; nodes talk to
// them through Send() and the callbacks.
//
// client: Connect()                        server: Accept()
//      |                                         |
//      v                                         v
// +-------------+  TCP up; the client  +--------------+  Hello accepted,   +--------+
// | kConnecting | -------------------> | kHandshaking | -----------------> | kReady |
// +-------------+  sends its Hello     +--------------+  HelloAck received +--------+
//      |                                 |        |                          |   |
//      | (a)                             | (b)    | (c)                      |(d)| (e)
//      |                                 |        v                          v   |
//      |                                 |   +-------------------------------+   |
//      |                                 |   |           kDraining           |   |
//      |                                 |   +-------------------------------+   |
//      |                                 |        | (f)                          |
//      v                                 v        v                              v
// +---------------------------------------------------------------------------------+
// |                                     kClosed                                     |
// +---------------------------------------------------------------------------------+
//      ^  on_closed(status) fires exactly once per incarnation; the RpcClient calls
//      +- Connect() again after backoff, which starts incarnation generation()+1.
//
// (a) connect error or connect_timeout.
// (b) hello_timeout, EOF or I/O error; the server refused our Hello (client side).
// (c) we refuse the peer's Hello (server: HelloAck{accepted=false, reason}) or its first frame
//     is bad: that last frame is flushed so the peer learns why.
// (d) Drain(), the peer's Goodbye, a bad frame (oversize, garbage, wrong version, no payload)
//     or a throwing callback: Goodbye{code, reason} is sent after the queue (which an error
//     drops), then our FIN.
// (e) EOF, I/O error, idle_timeout or write_timeout: closed at once.
// (f) our FIN is out and the peer's FIN arrived, or drain_timeout passed.
//
// Generation counter: every Connect()/Accept() starts a new incarnation and increments
// generation(). Every asynchronous completion (read, write, timer, posted send) captures the
// generation it was issued under and returns without touching anything when the connection has
// since closed or moved on, so a late callback from an old socket can never act on a new one.
//
// Threading: all state lives on one strand of the owning endpoint's io_context, which that
// endpoint runs on a single thread (the "io thread"). Send(), Connect(), Accept(), Drain() and
// Close() may be called from any thread: they post onto the strand. Callbacks (on_ready,
// on_message, on_closed) and the HelloValidator are invoked on the io thread; they must not
// block for long, since they hold up every other connection of the endpoint. An exception thrown
// by a callback is caught here, logged, and closes the connection with kInternal; none escapes
// into Asio.
//
// TLS (options.tls set): kHandshaking begins with the TLS handshake (client and server
// certificates checked, common/rpc/tls.h), then the Hello exchange runs inside it; hello_timeout
// bounds both together. A TLS protocol failure (bad certificate, peer not speaking TLS) counts as
// a refused handshake: the client gives up.
//
// Heartbeats and Goodbye are transport frames: they are consumed here and never reach
// on_message. A Goodbye with a non-OK code tells the peer why we are closing (e.g. its frame was
// too large), so both ends report the same Status.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/rpc/frame_codec.h"
#include "common/rpc/rpc_options.h"
#include "common/rpc/tls.h"
#include "common/status.h"
#include "proto/tandem.pb.h"

namespace spdlog {
class logger;
}

namespace tandem::rpc {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State : uint8_t { kConnecting, kHandshaking, kReady, kDraining, kClosed };
  enum class Side : uint8_t { kClient, kServer };
  using Ptr = std::shared_ptr<Connection>;

  struct Callbacks {
    std::function<void(const Ptr&)> on_ready;                       // handshake done
    std::function<void(const Ptr&, proto::Envelope&&)> on_message;  // application frames only
    std::function<void(const Ptr&, const Status&)> on_closed;       // once per incarnation
  };
  // Decides whether to accept the peer's Hello (e.g. KV layout hash, role). The protocol version
  // is checked before it is called. A non-OK Status refuses the peer, with its message as reason.
  using HelloValidator = std::function<Status(const proto::Hello& peer)>;

  struct Stats {
    uint64_t frames_sent = 0;  // every frame, transport frames included
    uint64_t frames_received = 0;
    uint64_t bytes_sent = 0;
    uint64_t bytes_received = 0;
    uint64_t heartbeats_sent = 0;
    uint64_t heartbeats_received = 0;
  };

  // REQUIRES: options.Validate().ok() (RpcServer/RpcClient check it); `io` outlives the
  // connection's last pending handler, i.e. the owner joins its io thread before destroying io.
  // `local_hello` is what we send (client) or put in HelloAck (server); a zero
  // protocol_version is replaced by kProtocolVersion (tests set another to provoke a mismatch).
  static Ptr Create(boost::asio::io_context& io, Side side, ConnectionOptions options, proto::Hello local_hello,
                    Callbacks callbacks, HelloValidator validator = nullptr);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Client side: starts a new incarnation towards `endpoint`. Ignored (and logged) unless the
  // connection is kClosed. Any thread.
  void Connect(const boost::asio::ip::tcp::endpoint& endpoint);
  // Server side: adopts a freshly accepted socket and waits for the peer's Hello. Any thread.
  void Accept(boost::asio::ip::tcp::socket socket);

  // Queues one application envelope (any payload except the transport's Hello, HelloAck,
  // Heartbeat, Goodbye). Stamps protocol_version, and sent_unix_us when zero. Any thread.
  // OK means queued, not delivered: if the connection closes first the frame is dropped.
  // Unavailable: not kReady. ResourceExhausted: the frame exceeds max_frame_bytes (nothing is
  // sent; the connection stays up) or the outgoing queue is full (backpressure: retry later).
  // InvalidArgument: no payload or a transport payload.
  Status Send(proto::Envelope envelope);

  // Orderly close: sends Goodbye{OK, reason}, flushes the queue, exchanges FINs, bounded by
  // drain_timeout; on_closed then gets OK. Before kReady it closes at once with kAborted.
  void Drain(std::string reason);
  // Immediate close; queued frames are dropped; on_closed gets `status`.
  void Close(Status status);

  State state() const { return state_.load(std::memory_order_acquire); }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  Side side() const { return side_; }
  // True when the last handshake was refused (either way) or spoke another protocol version:
  // retrying cannot help, so the client gives up.
  bool refused() const { return refused_.load(std::memory_order_acquire); }
  // The peer's Hello from the last successful handshake (empty before one).
  proto::Hello peer_hello() const;
  // "ip:port" of the peer of the current or last incarnation.
  std::string peer_address() const;
  size_t queued_frames() const { return queued_frames_.load(std::memory_order_relaxed); }
  Stats stats() const;
  const ConnectionOptions& options() const { return options_; }

 private:
  struct PrivateTag {};

 public:
  Connection(PrivateTag, boost::asio::io_context& io, Side side, ConnectionOptions options, proto::Hello local_hello,
             Callbacks callbacks, HelloValidator validator);

 private:
  using Clock = std::chrono::steady_clock;

  // All below run on strand_ only.
  bool Live(uint64_t gen) const;
  void BeginIncarnation(std::string peer_address);
  void StartHandshake();
  void OnTlsHandshake(uint64_t gen, const boost::system::error_code& ec, const internal::TlsSession& session);
  void StartHello();
  // A TLS failure that retrying cannot fix (certificate, protocol): refused, closed, said why.
  void RefuseTls(const std::string& why);
  void OnConnect(uint64_t gen, const boost::system::error_code& ec);
  void StartRead();
  void OnRead(uint64_t gen, const boost::system::error_code& ec, size_t bytes);
  void HandleEof();
  void HandleEnvelope(proto::Envelope&& envelope);
  void HandleHello(const proto::Envelope& envelope);
  void HandleAuthProof(const proto::Envelope& envelope);
  void AcceptHello(const proto::Hello& hello);
  // Client: the accepting side's AuthChallenge; false when the connection was closed.
  bool HandleAuthChallenge(const proto::AuthChallenge& challenge);
  void HandleHelloAck(const proto::Envelope& envelope);
  void HandlePeerGoodbye(const proto::Goodbye& goodbye);
  void RefuseHello(const std::string& reason);
  void EnterReady();
  void EnqueueInternal(proto::Envelope envelope);
  void EnqueueUser(uint64_t gen, std::string frame);
  void StartWrite();
  void OnWrite(uint64_t gen, const boost::system::error_code& ec, size_t bytes);
  void FinishDrainWrite();
  // Closes after telling the peer why (Goodbye with the error), discarding further input.
  void Fail(const Status& status);
  void BeginDrain(Status close_status, std::optional<proto::Envelope> last_frame, bool discard_input, bool drop_queue);
  void CloseNow(const Status& status);
  void ArmTimer(Clock::time_point when);
  void OnTimer();
  void Tick(Clock::time_point now);
  void DropQueue();
  void ReleaseInflight();
  void Release(size_t frames, size_t bytes);
  proto::Hello StampedLocalHello() const;

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  const Side side_;
  const ConnectionOptions options_;
  const proto::Hello local_hello_;
  const Callbacks callbacks_;
  const HelloValidator validator_;
  const Clock::duration tick_period_;
  std::shared_ptr<spdlog::logger> log_;

  // Written on the strand, readable from any thread.
  std::atomic<State> state_{State::kClosed};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> refused_{false};
  std::atomic<size_t> queued_frames_{0};  // queued + in flight, all incarnations' leftovers freed
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<uint64_t> frames_sent_{0}, frames_received_{0}, bytes_sent_{0}, bytes_received_{0}, heartbeats_sent_{0},
      heartbeats_received_{0};

  mutable std::mutex info_mu_;
  proto::Hello peer_hello_;   // GUARDED_BY(info_mu_)
  std::string peer_address_;  // GUARDED_BY(info_mu_)

  // Strand-only state of the current incarnation.
  FrameDecoder decoder_;
  std::vector<char> read_buf_;
  std::deque<std::string> queue_;                       // encoded frames not yet handed to TCP
  std::shared_ptr<std::vector<std::string>> inflight_;  // the batch async_write is sending
  size_t inflight_bytes_ = 0;
  Clock::time_point write_started_{}, last_read_{}, last_write_{}, phase_deadline_{};
  uint64_t timer_seq_ = 0;  // re-arming invalidates an already-queued timer completion
  Status close_status_;
  bool discard_input_ = false;  // after a fatal frame error: read only to see EOF
  bool drain_accepts_ = false;  // kDraining still takes racing posted sends (orderly drains)
  bool shutdown_sent_ = false;  // our FIN is out
  bool peer_eof_ = false;       // the peer's FIN arrived
  bool reached_ready_ = false;  // this incarnation completed its handshake
  bool first_read_ = true;      // no bytes read yet in this incarnation
  // TLS of this incarnation (options_.tls set); handlers hold it too, so an old session outlives
  // a reconnect until its last completion ran.
  std::shared_ptr<internal::TlsSession> tls_;
  bool tls_established_ = false;
  std::string dialed_host_;  // client: the address the server's certificate must name
  // Cluster authentication of this incarnation (options_.cluster_secret set).
  std::string auth_nonce_;                     // ours: the client's in its Hello, the server's in its challenge
  std::string peer_auth_nonce_;                // server: the client's, from its Hello
  std::optional<proto::Hello> pending_hello_;  // server: the Hello waiting for its AuthProof
  bool peer_authenticated_ = false;            // client: the server proved the secret
};

std::string_view StateName(Connection::State state);

}  // namespace tandem::rpc
