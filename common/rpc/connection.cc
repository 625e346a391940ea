#include "common/rpc/connection.h"

#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <exception>

#include "common/logging.h"
#include "common/rpc/cluster_auth.h"
#include "common/rpc/connection_internal.h"
#include "common/rpc/wire_status.h"

namespace tandem::rpc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using internal::CatchAll;
using internal::IsTransportPayload;
using internal::Ms;
using internal::PayloadName;

namespace {

constexpr size_t kReadChunkBytes = size_t{64} << 10;
// One async_write gathers at most this much, so a burst of small frames becomes few syscalls
// while the write timeout still measures a bounded amount of work.
constexpr size_t kMaxBatchFrames = 256;
constexpr size_t kMaxBatchBytes = size_t{4} << 20;

std::chrono::steady_clock::duration TickPeriod(const ConnectionOptions& o) {
  // Fine enough that every timeout fires within ~25% of its bound, coarse enough to be free.
  auto period = std::min({o.heartbeat_interval, o.idle_timeout, o.write_timeout, o.drain_timeout}) / 4;
  return std::clamp(period, std::chrono::milliseconds(1), std::chrono::milliseconds(250));
}

}  // namespace

std::string_view StateName(Connection::State state) {
  switch (state) {
    case Connection::State::kConnecting:
      return "connecting";
    case Connection::State::kHandshaking:
      return "handshaking";
    case Connection::State::kReady:
      return "ready";
    case Connection::State::kDraining:
      return "draining";
    case Connection::State::kClosed:
      return "closed";
  }
  return "unknown";
}

Connection::Ptr Connection::Create(asio::io_context& io, Side side, ConnectionOptions options, proto::Hello local_hello,
                                   Callbacks callbacks, HelloValidator validator) {
  return std::make_shared<Connection>(PrivateTag{}, io, side, std::move(options), std::move(local_hello),
                                      std::move(callbacks), std::move(validator));
}

Connection::Connection(PrivateTag, asio::io_context& io, Side side, ConnectionOptions options, proto::Hello local_hello,
                       Callbacks callbacks, HelloValidator validator)
    : strand_(asio::make_strand(io)),
      socket_(strand_),
      timer_(strand_),
      side_(side),
      options_(std::move(options)),
      local_hello_(std::move(local_hello)),
      callbacks_(std::move(callbacks)),
      validator_(std::move(validator)),
      tick_period_(TickPeriod(options_)),
      log_(GetLogger("rpc")),
      decoder_(options_.max_frame_bytes),
      read_buf_(kReadChunkBytes) {}

Connection::~Connection() = default;

proto::Hello Connection::peer_hello() const {
  std::lock_guard<std::mutex> lock(info_mu_);
  return peer_hello_;
}

std::string Connection::peer_address() const {
  std::lock_guard<std::mutex> lock(info_mu_);
  return peer_address_;
}

Connection::Stats Connection::stats() const {
  Stats s;
  s.frames_sent = frames_sent_.load(std::memory_order_relaxed);
  s.frames_received = frames_received_.load(std::memory_order_relaxed);
  s.bytes_sent = bytes_sent_.load(std::memory_order_relaxed);
  s.bytes_received = bytes_received_.load(std::memory_order_relaxed);
  s.heartbeats_sent = heartbeats_sent_.load(std::memory_order_relaxed);
  s.heartbeats_received = heartbeats_received_.load(std::memory_order_relaxed);
  return s;
}

// ---- public, any thread ------------------------------------------------------------------

void Connection::Connect(const tcp::endpoint& endpoint) {
  asio::post(strand_, [self = shared_from_this(), endpoint] {
    if (self->state() != State::kClosed) {
      self->log_->warn("Connect({}) ignored: connection is {}", endpoint.address().to_string(),
                       StateName(self->state()));
      return;
    }
    self->BeginIncarnation(endpoint.address().to_string() + ":" + std::to_string(endpoint.port()));
    self->dialed_host_ = endpoint.address().to_string();
    self->socket_ = tcp::socket(self->strand_);
    self->state_.store(State::kConnecting, std::memory_order_release);
    self->ArmTimer(Clock::now() + self->options_.connect_timeout);
    const uint64_t gen = self->generation();
    self->socket_.async_connect(
        endpoint, asio::bind_executor(self->strand_, [self, gen](const auto& ec) { self->OnConnect(gen, ec); }));
  });
}

void Connection::Accept(tcp::socket socket) {
  asio::post(strand_, [self = shared_from_this(), socket = std::move(socket)]() mutable {
    boost::system::error_code ec;
    if (self->state() != State::kClosed) {
      self->log_->error("Accept ignored: connection is {}", StateName(self->state()));
      socket.close(ec);
      return;
    }
    const auto remote = socket.remote_endpoint(ec);
    self->BeginIncarnation(ec ? std::string("<unknown peer>")
                              : remote.address().to_string() + ":" + std::to_string(remote.port()));
    self->socket_ = std::move(socket);
    self->StartHandshake();
  });
}

Status Connection::Send(proto::Envelope envelope) {
  const State s = state();
  if (s != State::kReady) {
    return UnavailableError("connection to " + peer_address() + " is " + std::string(StateName(s)) + ", not ready");
  }
  if (envelope.payload_case() == proto::Envelope::PAYLOAD_NOT_SET) {
    return InvalidArgumentError("Send: envelope has no payload");
  }
  if (IsTransportPayload(envelope.payload_case())) {
    return InvalidArgumentError("Send: " + PayloadName(envelope) + " is reserved for the transport");
  }
  envelope.set_protocol_version(kProtocolVersion);
  if (envelope.sent_unix_us() == 0) envelope.set_sent_unix_us(UnixNowMicros());
  std::string frame;
  // Serialized on the caller's thread: the io thread only moves bytes.
  Status encoded = AppendFrame(envelope, options_.max_frame_bytes, &frame);
  if (!encoded.ok()) {
    return Status(encoded.code(), encoded.message() + " (not sent; the connection stays open)");
  }

  const size_t frames = queued_frames_.fetch_add(1, std::memory_order_relaxed) + 1;
  const size_t bytes = queued_bytes_.fetch_add(frame.size(), std::memory_order_relaxed) + frame.size();
  if (frames > options_.max_queued_frames || bytes > options_.max_queued_bytes) {
    Release(1, frame.size());
    return ResourceExhaustedError("outgoing queue to " + peer_address() + " is full (" + std::to_string(frames - 1) +
                                  " frames, " + std::to_string(bytes - frame.size()) + " bytes; limits " +
                                  std::to_string(options_.max_queued_frames) + " frames, " +
                                  std::to_string(options_.max_queued_bytes) + " bytes)");
  }
  asio::post(strand_, [self = shared_from_this(), gen = generation(), frame = std::move(frame)]() mutable {
    self->EnqueueUser(gen, std::move(frame));
  });
  return Status::Ok();
}

void Connection::Drain(std::string reason) {
  asio::post(strand_, [self = shared_from_this(), reason = std::move(reason)] {
    switch (self->state()) {
      case State::kConnecting:
      case State::kHandshaking:
        self->CloseNow(AbortedError("closed before the handshake finished: " + reason));
        return;
      case State::kReady: {
        proto::Envelope bye;
        bye.mutable_goodbye()->set_code(proto::ERROR_CODE_OK);
        bye.mutable_goodbye()->set_reason(reason);
        self->BeginDrain(Status::Ok(), std::move(bye), /*discard_input=*/false,
                         /*drop_queue=*/false);
        return;
      }
      case State::kDraining:
      case State::kClosed:
        return;
    }
  });
}

void Connection::Close(Status status) {
  asio::post(strand_, [self = shared_from_this(), status = std::move(status)] { self->CloseNow(status); });
}

// ---- strand only --------------------------------------------------------------------------

bool Connection::Live(uint64_t gen) const { return gen == generation() && state() != State::kClosed; }

void Connection::BeginIncarnation(std::string peer_address) {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  refused_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(info_mu_);
    peer_address_ = std::move(peer_address);
    peer_hello_.Clear();
  }
  decoder_.Reset();
  queue_.clear();
  inflight_.reset();
  inflight_bytes_ = 0;
  close_status_ = Status::Ok();
  discard_input_ = false;
  drain_accepts_ = false;
  shutdown_sent_ = false;
  peer_eof_ = false;
  reached_ready_ = false;
  tls_.reset();
  tls_established_ = false;
  first_read_ = true;
  last_read_ = last_write_ = Clock::now();
}

void Connection::OnConnect(uint64_t gen, const boost::system::error_code& ec) {
  if (!Live(gen)) return;
  if (ec) {
    CloseNow(UnavailableError("connect to " + peer_address() + " failed: " + ec.message()));
    return;
  }
  StartHandshake();
}

void Connection::StartRead() {
  if (tls_) {
    tls_->AsyncReadSome(strand_, asio::buffer(read_buf_),
                        [self = shared_from_this(), gen = generation(), tls = tls_](
                            const boost::system::error_code& ec, size_t n) { self->OnRead(gen, ec, n); });
    return;
  }
  socket_.async_read_some(
      asio::buffer(read_buf_),
      asio::bind_executor(strand_, [self = shared_from_this(), gen = generation()](
                                       const boost::system::error_code& ec, size_t n) { self->OnRead(gen, ec, n); }));
}

void Connection::OnRead(uint64_t gen, const boost::system::error_code& ec, size_t bytes) {
  if (!Live(gen)) return;
  if (ec) {
    // Under TLS a FIN without close_notify is the end of our stream too (see tls.h).
    if (ec == asio::error::eof || (tls_ && internal::IsTlsTruncation(ec))) {
      HandleEof();
    } else if (tls_ && state() == State::kHandshaking && internal::IsTlsProtocolError(ec)) {
      // TLS 1.3: the acceptor checks our certificate after our side of the handshake is done,
      // so its refusal arrives as an alert on the first read.
      RefuseTls(ec.message());
    } else {
      CloseNow(UnavailableError("read from " + peer_address() + " failed: " + ec.message()));
    }
    return;
  }
  last_read_ = Clock::now();
  bytes_received_.fetch_add(bytes, std::memory_order_relaxed);
  if (first_read_ && !tls_ && side_ == Side::kServer && bytes >= 2 && read_buf_[0] == 0x16 && read_buf_[1] == 0x03) {
    // A TLS ClientHello (handshake record, version 3.x) where a Hello frame belongs.
    first_read_ = false;
    Fail(FailedPreconditionError("peer " + peer_address() +
                                 " speaks TLS; this node was started without --tls-cert, --tls-key and --tls-ca"));
    if (Live(gen)) StartRead();
    return;
  }
  first_read_ = false;
  if (!discard_input_) {
    decoder_.Append(read_buf_.data(), bytes);
    proto::Envelope envelope;
    while (true) {
      Result<bool> got = decoder_.Next(&envelope);
      if (!got.ok()) {
        Fail(got.status().WithContext("reading from " + peer_address()));
        break;
      }
      if (!*got) break;
      HandleEnvelope(std::move(envelope));
      if (!Live(gen)) return;  // the envelope (or a callback's exception) closed us
      if (discard_input_) break;
    }
  }
  if (Live(gen)) StartRead();
}

void Connection::HandleEof() {
  if (state() == State::kDraining) {
    peer_eof_ = true;
    if (shutdown_sent_) CloseNow(close_status_);
    return;  // otherwise FinishDrainWrite closes once our queue is flushed
  }
  CloseNow(UnavailableError("peer " + peer_address() + " closed the connection" +
                            (state() == State::kReady ? "" : " during the handshake")));
}

void Connection::HandleEnvelope(proto::Envelope&& envelope) {
  frames_received_.fetch_add(1, std::memory_order_relaxed);
  if (state() == State::kHandshaking) {
    if (side_ == Side::kServer) {
      HandleHello(envelope);
    } else {
      HandleHelloAck(envelope);
    }
    return;
  }
  if (envelope.protocol_version() != kProtocolVersion) {
    Fail(FailedPreconditionError("envelope with protocol version " + std::to_string(envelope.protocol_version()) +
                                 " from " + peer_address() + "; this node speaks version " +
                                 std::to_string(kProtocolVersion)));
    return;
  }
  switch (envelope.payload_case()) {
    case proto::Envelope::kHeartbeat:
      heartbeats_received_.fetch_add(1, std::memory_order_relaxed);
      return;
    case proto::Envelope::kGoodbye:
      HandlePeerGoodbye(envelope.goodbye());
      return;
    case proto::Envelope::kHello:
    case proto::Envelope::kHelloAck:
      Fail(FailedPreconditionError("unexpected " + PayloadName(envelope) + " from " + peer_address() +
                                   " after the handshake"));
      return;
    case proto::Envelope::PAYLOAD_NOT_SET:
      // Same protocol version but a payload we cannot name: a peer built from another .proto.
      Fail(InvalidArgumentError("envelope without a known payload from " + peer_address()));
      return;
    default:
      break;
  }
  if (state() == State::kDraining && discard_input_) return;
  if (!callbacks_.on_message) return;
  Status outcome = CatchAll("on_message", [&] { callbacks_.on_message(shared_from_this(), std::move(envelope)); });
  if (!outcome.ok()) Fail(outcome);
}

void Connection::EnqueueInternal(proto::Envelope envelope) {
  envelope.set_protocol_version(kProtocolVersion);
  envelope.set_sent_unix_us(UnixNowMicros());
  std::string frame;
  // Transport frames are tiny; only a Hello with an absurd rkey could exceed the limit.
  Status encoded = AppendFrame(envelope, options_.max_frame_bytes, &frame);
  if (!encoded.ok()) {
    CloseNow(encoded.WithContext("encoding " + PayloadName(envelope)));
    return;
  }
  if (envelope.payload_case() == proto::Envelope::kHeartbeat) {
    heartbeats_sent_.fetch_add(1, std::memory_order_relaxed);
  }
  // Counted but never refused: the transport must always be able to say Hello and Goodbye.
  queued_frames_.fetch_add(1, std::memory_order_relaxed);
  queued_bytes_.fetch_add(frame.size(), std::memory_order_relaxed);
  queue_.push_back(std::move(frame));
  StartWrite();
}

void Connection::EnqueueUser(uint64_t gen, std::string frame) {
  const bool accept =
      Live(gen) && !shutdown_sent_ && (state() == State::kReady || (state() == State::kDraining && drain_accepts_));
  if (!accept) {
    Release(1, frame.size());
    return;
  }
  queue_.push_back(std::move(frame));
  StartWrite();
}

void Connection::StartWrite() {
  if (inflight_ || queue_.empty() || state() == State::kClosed || shutdown_sent_) return;
  auto batch = std::make_shared<std::vector<std::string>>();
  size_t bytes = 0;
  while (!queue_.empty() && batch->size() < kMaxBatchFrames &&
         (batch->empty() || bytes + queue_.front().size() <= kMaxBatchBytes)) {
    bytes += queue_.front().size();
    batch->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(batch->size());
  for (const std::string& frame : *batch) buffers.push_back(asio::buffer(frame));
  inflight_ = batch;
  inflight_bytes_ = bytes;
  write_started_ = Clock::now();
  if (tls_) {
    tls_->AsyncWrite(strand_, std::move(buffers),
                     [self = shared_from_this(), gen = generation(), batch, tls = tls_](
                         const boost::system::error_code& ec, size_t n) { self->OnWrite(gen, ec, n); });
    return;
  }
  asio::async_write(
      socket_, buffers,
      asio::bind_executor(strand_, [self = shared_from_this(), gen = generation(), batch](
                                       const boost::system::error_code& ec, size_t n) { self->OnWrite(gen, ec, n); }));
}

void Connection::OnWrite(uint64_t gen, const boost::system::error_code& ec, size_t bytes) {
  if (!Live(gen)) return;  // CloseNow already released the in-flight batch
  const size_t frames = inflight_ ? inflight_->size() : 0;
  ReleaseInflight();
  if (ec) {
    CloseNow(UnavailableError("write to " + peer_address() + " failed: " + ec.message()));
    return;
  }
  frames_sent_.fetch_add(frames, std::memory_order_relaxed);
  bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
  last_write_ = Clock::now();
  if (!queue_.empty()) {
    StartWrite();
  } else if (state() == State::kDraining) {
    FinishDrainWrite();
  }
}

void Connection::FinishDrainWrite() {
  if (!shutdown_sent_) {
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    shutdown_sent_ = true;
  }
  if (peer_eof_) CloseNow(close_status_);
}

void Connection::Fail(const Status& status) {
  switch (state()) {
    case State::kClosed:
      return;
    case State::kConnecting:
      CloseNow(status);
      return;
    case State::kDraining:
      // Already leaving; an error while draining ends it now, keeping the first cause.
      CloseNow(close_status_.ok() ? status : close_status_);
      return;
    case State::kHandshaking:
    case State::kReady: {
      log_->warn("closing connection to {}: {}", peer_address(), status.ToString());
      proto::Envelope bye;
      bye.mutable_goodbye()->set_code(ToProtoErrorCode(status.code()));
      bye.mutable_goodbye()->set_reason(status.message());
      BeginDrain(status, std::move(bye), /*discard_input=*/true, /*drop_queue=*/true);
      return;
    }
  }
}

void Connection::BeginDrain(Status close_status, std::optional<proto::Envelope> last_frame, bool discard_input,
                            bool drop_queue) {
  state_.store(State::kDraining, std::memory_order_release);
  close_status_ = std::move(close_status);
  discard_input_ = discard_input;
  drain_accepts_ = !drop_queue;
  if (drop_queue) DropQueue();
  phase_deadline_ = Clock::now() + options_.drain_timeout;
  ArmTimer(std::min(Clock::now() + tick_period_, phase_deadline_));
  if (last_frame) EnqueueInternal(std::move(*last_frame));
  if (state() == State::kDraining && !inflight_ && queue_.empty()) FinishDrainWrite();
}

void Connection::CloseNow(const Status& status) {
  if (state() == State::kClosed) return;
  state_.store(State::kClosed, std::memory_order_release);
  boost::system::error_code ec;
  socket_.close(ec);
  ++timer_seq_;
  timer_.cancel();
  DropQueue();
  ReleaseInflight();
  decoder_.Reset();
  close_status_ = status;
  // Failed attempts repeat every backoff period during an outage: keep them out of info logs.
  if (status.ok() || !reached_ready_) {
    log_->debug("closed connection to {}: {}", peer_address(), status.ToString());
  } else {
    log_->info("closed connection to {}: {}", peer_address(), status.ToString());
  }
  if (callbacks_.on_closed) {
    // Nothing left to close; the best we can do with a throwing on_closed is to say so.
    Status outcome = CatchAll("on_closed", [&] { callbacks_.on_closed(shared_from_this(), status); });
    if (!outcome.ok()) log_->error("{}", outcome.message());
  }
}

void Connection::ArmTimer(Clock::time_point when) {
  const uint64_t seq = ++timer_seq_;
  timer_.expires_at(when);
  timer_.async_wait(asio::bind_executor(
      strand_, [self = shared_from_this(), gen = generation(), seq](const boost::system::error_code& ec) {
        if (ec || !self->Live(gen) || seq != self->timer_seq_) return;
        self->OnTimer();
      }));
}

void Connection::OnTimer() {
  switch (state()) {
    case State::kConnecting:
      CloseNow(
          DeadlineExceededError("connect to " + peer_address() + " timed out after " + Ms(options_.connect_timeout)));
      return;
    case State::kHandshaking:
      if (options_.tls && !tls_established_) {
        CloseNow(DeadlineExceededError("TLS handshake with " + peer_address() + " did not finish within " +
                                       Ms(options_.hello_timeout)));
        return;
      }
      CloseNow(DeadlineExceededError(
          side_ == Side::kServer
              ? "peer " + peer_address() + " sent no hello within " + Ms(options_.hello_timeout)
              : "peer " + peer_address() + " accepted the TCP connection but sent no hello_ack within " +
                    Ms(options_.hello_timeout)));
      return;
    case State::kReady:
    case State::kDraining:
      Tick(Clock::now());
      return;
    case State::kClosed:
      return;
  }
}

void Connection::Tick(Clock::time_point now) {
  if (inflight_ && now - write_started_ > options_.write_timeout) {
    CloseNow(DeadlineExceededError("write of " + std::to_string(inflight_bytes_) + " bytes to " + peer_address() +
                                   " did not complete within " + Ms(options_.write_timeout) + " (peer not reading?)"));
    return;
  }
  if (state() == State::kDraining) {
    if (now >= phase_deadline_) {
      // Our part is done once the FIN is out; a peer that never answers it is not our error.
      CloseNow(shutdown_sent_ ? close_status_
                              : DeadlineExceededError("drain to " + peer_address() + " did not flush within " +
                                                      Ms(options_.drain_timeout)));
      return;
    }
    ArmTimer(std::min(now + tick_period_, phase_deadline_));
    return;
  }
  if (now - last_read_ > options_.idle_timeout) {
    // A silent peer is presumed dead: no Goodbye, no drain, close at once.
    CloseNow(DeadlineExceededError("no bytes from " + peer_address() + " for " + Ms(options_.idle_timeout) +
                                   " (idle_timeout)"));
    return;
  }
  if (!inflight_ && queue_.empty() && now - last_write_ >= options_.heartbeat_interval) {
    proto::Envelope beat;
    beat.mutable_heartbeat()->set_sent_unix_us(UnixNowMicros());
    EnqueueInternal(std::move(beat));
    last_write_ = now;  // one heartbeat per interval even if the write is slow
  }
  ArmTimer(now + tick_period_);
}

void Connection::DropQueue() {
  size_t bytes = 0;
  for (const std::string& frame : queue_) bytes += frame.size();
  Release(queue_.size(), bytes);
  queue_.clear();
}

void Connection::ReleaseInflight() {
  if (!inflight_) return;
  Release(inflight_->size(), inflight_bytes_);
  inflight_.reset();
  inflight_bytes_ = 0;
}

void Connection::Release(size_t frames, size_t bytes) {
  queued_frames_.fetch_sub(frames, std::memory_order_relaxed);
  queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

}  // namespace tandem::rpc
