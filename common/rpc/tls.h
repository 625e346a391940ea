// Optional TLS for the control plane (--tls-cert, --tls-key, --tls-ca on the router and the
// nodes). Mutual: every process presents its certificate and checks its peer's against the CA
// file; the dialing side also checks that the certificate names the address it dialed (an IP or
// DNS subjectAltName). TLS 1.3 only: every peer is a Tandem process built against the same
// OpenSSL. Without the files the transport stays plain TCP (the cluster secret, if any, still
// authenticates peers; TLS adds confidentiality and integrity of what they say).
//
// Orderly closes stay as they are in plain mode (Goodbye frame, then a TCP FIN): no close_notify
// is exchanged, and a FIN after the last frame reads as end of stream. A peer that cut the stream
// short gains nothing: every frame that did arrive is authenticated and whole.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/rpc/rpc_options.h"
#include "common/status.h"

namespace tandem::rpc {

// Holds the OpenSSL context; shared by every connection of a process (read-only once loaded).
class TlsContext;

// Null when `files` is empty. InvalidArgument when only some files are given, a file does not
// parse, or the key does not match the certificate; NotFound when a file is missing. Warns when
// the key file can be read by other users.
Result<std::shared_ptr<TlsContext>> LoadTlsContext(const TlsFiles& files);

namespace internal {

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;
using HandshakeHandler = std::function<void(const boost::system::error_code&)>;
using IoHandler = std::function<void(const boost::system::error_code&, size_t)>;

// One TLS session over a connection's TCP socket, for one incarnation. Its operations complete
// on `strand`; the connection keeps the session alive (captured by each handler) until they do,
// so a new incarnation can replace it while an old completion is still queued.
class TlsSession {
 public:
  enum class Role { kClient, kServer };
  // `peer_host`: the address the client dialed, checked against the server's certificate.
  TlsSession(TlsContext& context, boost::asio::ip::tcp::socket& socket, Role role, const std::string& peer_host);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  void AsyncHandshake(Strand& strand, HandshakeHandler handler);
  void AsyncReadSome(Strand& strand, boost::asio::mutable_buffer buffer, IoHandler handler);
  void AsyncWrite(Strand& strand, std::vector<boost::asio::const_buffer> buffers, IoHandler handler);

  // The negotiated protocol ("TLSv1.3") once the handshake is done.
  std::string Version() const;
  // The handshake's failure in words, with the certificate check's verdict when that failed.
  std::string Describe(const boost::system::error_code& ec) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The peer closed TCP without close_notify: for our framing, the end of the stream.
bool IsTlsTruncation(const boost::system::error_code& ec);
// An error of the TLS protocol itself (bad certificate, not TLS, wrong version): retrying the
// same peer cannot help, unlike a reset or a timeout.
bool IsTlsProtocolError(const boost::system::error_code& ec);

}  // namespace internal
}  // namespace tandem::rpc
