// The TLS and Hello/HelloAck handshakes and Goodbye handling of Connection (see connection.h for the
// state machine). Split from connection.cc only to keep each file readable; same class, same
// strand rules: everything here runs on the connection's strand.
#include <mutex>

#include "common/logging.h"
#include "common/rpc/cluster_auth.h"
#include "common/rpc/connection.h"
#include "common/rpc/connection_internal.h"
#include "common/rpc/wire_status.h"

namespace tandem::rpc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using internal::CatchAll;
using internal::PayloadName;

void Connection::StartHandshake() {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);  // control frames are small and latency-bound
  state_.store(State::kHandshaking, std::memory_order_release);
  ArmTimer(Clock::now() + options_.hello_timeout);
  auth_nonce_.clear();
  peer_auth_nonce_.clear();
  pending_hello_.reset();
  peer_authenticated_ = false;
  if (!options_.tls) {
    StartHello();
    return;
  }
  tls_ = std::make_shared<internal::TlsSession>(
      *options_.tls, socket_,
      side_ == Side::kClient ? internal::TlsSession::Role::kClient : internal::TlsSession::Role::kServer, dialed_host_);
  tls_->AsyncHandshake(strand_, [self = shared_from_this(), gen = generation(), tls = tls_](
                                    const boost::system::error_code& ec) { self->OnTlsHandshake(gen, ec, *tls); });
}

void Connection::OnTlsHandshake(uint64_t gen, const boost::system::error_code& ec,
                                const internal::TlsSession& session) {
  if (!Live(gen)) return;
  if (ec) {
    if (!internal::IsTlsProtocolError(ec)) {
      CloseNow(UnavailableError("TLS handshake with " + peer_address() + " failed: " + session.Describe(ec)));
      return;
    }
    RefuseTls(session.Describe(ec));
    return;
  }
  tls_established_ = true;
  StartHello();
}

void Connection::RefuseTls(const std::string& why) {
  // A certificate or protocol mismatch stays one on the next attempt: the client gives up.
  refused_.store(true, std::memory_order_release);
  const std::string what = "TLS handshake with " + peer_address() + " failed: " + why;
  if (side_ == Side::kServer) log_->warn("refused a peer: {}", what);
  CloseNow(FailedPreconditionError(what));
}

void Connection::StartHello() {
  StartRead();
  if (side_ == Side::kClient) {
    proto::Envelope hello;
    *hello.mutable_hello() = StampedLocalHello();
    if (!options_.cluster_secret.empty()) {
      auth_nonce_ = NewAuthNonce();
      if (auth_nonce_.empty()) {
        CloseNow(InternalError("no randomness for the authentication nonce"));
        return;
      }
      hello.mutable_hello()->set_auth_nonce(auth_nonce_);
    }
    EnqueueInternal(std::move(hello));
  }
}

proto::Hello Connection::StampedLocalHello() const {
  proto::Hello hello = local_hello_;
  if (hello.protocol_version() == 0) hello.set_protocol_version(kProtocolVersion);
  hello.set_sent_unix_us(UnixNowMicros());
  return hello;
}

void Connection::HandleHello(const proto::Envelope& envelope) {
  if (pending_hello_) {
    HandleAuthProof(envelope);
    return;
  }
  if (envelope.payload_case() != proto::Envelope::kHello) {
    RefuseHello("expected hello as the first frame, got " + PayloadName(envelope));
    return;
  }
  const proto::Hello& hello = envelope.hello();
  if (hello.protocol_version() != kProtocolVersion || envelope.protocol_version() != kProtocolVersion) {
    RefuseHello("protocol version " + std::to_string(hello.protocol_version()) +
                " is not supported; this node speaks version " + std::to_string(kProtocolVersion));
    return;
  }
  if (!options_.cluster_secret.empty()) {
    // Nothing of the Hello is used (validated, logged as an identity, acted on) before its
    // sender proves the secret.
    if (hello.auth_nonce().size() != kAuthNonceBytes) {
      RefuseHello("this node requires cluster authentication: give the peer the cluster's --cluster-secret-file");
      return;
    }
    auth_nonce_ = NewAuthNonce();
    if (auth_nonce_.empty()) {
      RefuseHello("no randomness for the authentication nonce");
      return;
    }
    peer_auth_nonce_ = hello.auth_nonce();
    pending_hello_ = hello;
    proto::Envelope challenge;
    challenge.mutable_auth_challenge()->set_nonce(auth_nonce_);
    challenge.mutable_auth_challenge()->set_proof(
        ServerAuthProof(options_.cluster_secret, peer_auth_nonce_, auth_nonce_));
    EnqueueInternal(std::move(challenge));
    return;
  }
  AcceptHello(hello);
}

void Connection::HandleAuthProof(const proto::Envelope& envelope) {
  if (envelope.payload_case() != proto::Envelope::kAuthProof) {
    RefuseHello("expected auth_proof after the challenge, got " + PayloadName(envelope));
    return;
  }
  const proto::Hello hello = *pending_hello_;
  pending_hello_.reset();
  const std::string expected = ClientAuthProof(options_.cluster_secret, peer_auth_nonce_, auth_nonce_, hello.node_id());
  if (!AuthProofMatches(expected, envelope.auth_proof().proof())) {
    RefuseHello("authentication failed: the peer's cluster secret differs from ours");
    return;
  }
  AcceptHello(hello);
}

void Connection::AcceptHello(const proto::Hello& hello) {
  if (validator_) {
    Status verdict;
    Status outcome = CatchAll("hello validator", [&] { verdict = validator_(hello); });
    if (!outcome.ok()) verdict = outcome;
    if (!verdict.ok()) {
      RefuseHello(verdict.message());
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(info_mu_);
    peer_hello_ = hello;
  }
  proto::Envelope ack;
  ack.mutable_hello_ack()->set_accepted(true);
  *ack.mutable_hello_ack()->mutable_hello() = StampedLocalHello();
  EnqueueInternal(std::move(ack));
  EnterReady();
}

void Connection::RefuseHello(const std::string& reason) {
  log_->warn("refusing {}: {}", peer_address(), reason);
  refused_.store(true, std::memory_order_release);
  proto::Envelope ack;
  ack.mutable_hello_ack()->set_accepted(false);
  ack.mutable_hello_ack()->set_reason(reason);
  *ack.mutable_hello_ack()->mutable_hello() = StampedLocalHello();
  BeginDrain(FailedPreconditionError("refused hello from " + peer_address() + ": " + reason), std::move(ack),
             /*discard_input=*/true, /*drop_queue=*/true);
}

void Connection::HandleHelloAck(const proto::Envelope& envelope) {
  if (envelope.payload_case() == proto::Envelope::kGoodbye) {
    HandlePeerGoodbye(envelope.goodbye());
    return;
  }
  if (envelope.payload_case() == proto::Envelope::kAuthChallenge) {
    HandleAuthChallenge(envelope.auth_challenge());
    return;
  }
  if (envelope.payload_case() != proto::Envelope::kHelloAck) {
    Fail(FailedPreconditionError("expected hello_ack from " + peer_address() + ", got " + PayloadName(envelope)));
    return;
  }
  const proto::HelloAck& ack = envelope.hello_ack();
  if (!ack.accepted()) {
    refused_.store(true, std::memory_order_release);
    CloseNow(FailedPreconditionError("peer " + peer_address() + " refused the handshake: " + ack.reason()));
    return;
  }
  if (!options_.cluster_secret.empty() && !peer_authenticated_) {
    refused_.store(true, std::memory_order_release);
    CloseNow(FailedPreconditionError("peer " + peer_address() +
                                     " accepted us without authenticating itself: it has no cluster secret"));
    return;
  }
  if (ack.hello().protocol_version() != kProtocolVersion) {
    refused_.store(true, std::memory_order_release);
    Fail(FailedPreconditionError("peer " + peer_address() + " speaks protocol version " +
                                 std::to_string(ack.hello().protocol_version()) + "; this node speaks version " +
                                 std::to_string(kProtocolVersion)));
    return;
  }
  if (validator_) {
    Status verdict;
    Status outcome = CatchAll("hello validator", [&] { verdict = validator_(ack.hello()); });
    if (!outcome.ok()) verdict = outcome;
    if (!verdict.ok()) {
      refused_.store(true, std::memory_order_release);
      Fail(FailedPreconditionError("refused hello from " + peer_address() + ": " + verdict.message()));
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(info_mu_);
    peer_hello_ = ack.hello();
  }
  EnterReady();
}

bool Connection::HandleAuthChallenge(const proto::AuthChallenge& challenge) {
  if (options_.cluster_secret.empty()) {
    refused_.store(true, std::memory_order_release);
    CloseNow(FailedPreconditionError("peer " + peer_address() +
                                     " requires cluster authentication: give this node the cluster's "
                                     "--cluster-secret-file"));
    return false;
  }
  if (peer_authenticated_ || challenge.nonce().size() != kAuthNonceBytes) {
    Fail(FailedPreconditionError("peer " + peer_address() + " sent a malformed or repeated auth_challenge"));
    return false;
  }
  if (!AuthProofMatches(ServerAuthProof(options_.cluster_secret, auth_nonce_, challenge.nonce()), challenge.proof())) {
    refused_.store(true, std::memory_order_release);
    CloseNow(FailedPreconditionError("peer " + peer_address() +
                                     " failed authentication: its cluster secret differs from ours"));
    return false;
  }
  peer_authenticated_ = true;
  proto::Envelope proof;
  proof.mutable_auth_proof()->set_proof(
      ClientAuthProof(options_.cluster_secret, auth_nonce_, challenge.nonce(), local_hello_.node_id()));
  EnqueueInternal(std::move(proof));
  return true;
}

void Connection::HandlePeerGoodbye(const proto::Goodbye& goodbye) {
  const StatusCode code = FromProtoErrorCode(goodbye.code());
  Status status = code == StatusCode::kOk
                      ? UnavailableError("peer " + peer_address() + " is shutting down: " + goodbye.reason())
                      : Status(code, "peer " + peer_address() + " closed the connection: " + goodbye.reason());
  if (state() != State::kReady) {
    // Handshaking: nothing to flush. Draining: both sides said goodbye; keep our own status.
    if (state() == State::kHandshaking) CloseNow(status);
    return;
  }
  // An orderly peer still reads until our FIN, so flush what we queued; after an error it
  // discards, so drop it.
  const bool orderly = code == StatusCode::kOk;
  // A late frame the peer raced past its Goodbye is still delivered in the orderly case.
  BeginDrain(std::move(status), std::nullopt, /*discard_input=*/!orderly, /*drop_queue=*/!orderly);
}

void Connection::EnterReady() {
  state_.store(State::kReady, std::memory_order_release);
  reached_ready_ = true;
  last_read_ = last_write_ = Clock::now();
  ArmTimer(Clock::now() + tick_period_);
  log_->info("connection to {} ready (peer node '{}', {})", peer_address(), peer_hello().node_id(),
             tls_ ? tls_->Version() : std::string("plain TCP"));
  if (callbacks_.on_ready) {
    Status outcome = CatchAll("on_ready", [&] { callbacks_.on_ready(shared_from_this()); });
    if (!outcome.ok()) Fail(outcome);
  }
}

}  // namespace tandem::rpc
