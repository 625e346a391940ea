#include "common/rpc/tls.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>

#include "common/logging.h"

namespace tandem::rpc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class TlsContext {
 public:
  asio::ssl::context ssl{asio::ssl::context::tls};
};

namespace {

Status CheckReadable(const std::string& path, const char* flag) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return NotFoundError(std::string(flag) + " " + path + ": no such file");
  }
  return Status::Ok();
}

Status FileError(const char* what, const std::string& path, const boost::system::error_code& ec) {
  return InvalidArgumentError(std::string(what) + " " + path + " cannot be used: " + ec.message());
}

}  // namespace

Result<std::shared_ptr<TlsContext>> LoadTlsContext(const TlsFiles& files) {
  if (files.empty()) return std::shared_ptr<TlsContext>();
  std::string missing;
  if (files.cert_file.empty()) missing += " --tls-cert";
  if (files.key_file.empty()) missing += " --tls-key";
  if (files.ca_file.empty()) missing += " --tls-ca";
  if (!missing.empty()) {
    return InvalidArgumentError("TLS needs --tls-cert, --tls-key and --tls-ca together; missing:" + missing);
  }
  RETURN_IF_ERROR(CheckReadable(files.cert_file, "--tls-cert"));
  RETURN_IF_ERROR(CheckReadable(files.key_file, "--tls-key"));
  RETURN_IF_ERROR(CheckReadable(files.ca_file, "--tls-ca"));

  auto context = std::make_shared<TlsContext>();
  asio::ssl::context& ssl = context->ssl;
  SSL_CTX* native = ssl.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1) {
    return InternalError("this OpenSSL cannot require TLS 1.3");
  }
  boost::system::error_code ec;
  ssl.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression, ec);
  if (!ec) ssl.use_certificate_chain_file(files.cert_file, ec);
  if (ec) return FileError("TLS certificate", files.cert_file, ec);
  ssl.use_private_key_file(files.key_file, asio::ssl::context::pem, ec);
  if (ec) return FileError("TLS private key", files.key_file, ec);
  if (SSL_CTX_check_private_key(native) != 1) {
    return InvalidArgumentError("TLS private key " + files.key_file + " does not match the certificate " +
                                files.cert_file);
  }
  ssl.load_verify_file(files.ca_file, ec);
  if (ec) return FileError("TLS CA file", files.ca_file, ec);
  // Mutual: an acceptor refuses a dialer without a certificate from the CA.
  ssl.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
  if (ec) return InternalError("cannot set the TLS verify mode: " + ec.message());

  struct stat st {};
  if (::stat(files.key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    GetLogger("rpc")->warn("TLS private key {} can be read by other users (chmod 600 it)", files.key_file);
  }
  return context;
}

namespace internal {

struct TlsSession::Impl {
  Impl(TlsContext& context, tcp::socket& socket) : stream(socket, context.ssl) {}
  asio::ssl::stream<tcp::socket&> stream;
  Role role = Role::kClient;
};

TlsSession::TlsSession(TlsContext& context, tcp::socket& socket, Role role, const std::string& peer_host)
    : impl_(std::make_unique<Impl>(context, socket)) {
  impl_->role = role;
  if (role == Role::kClient) {
    // Beyond the chain to the CA, the certificate must name the address we dialed. OpenSSL's own
    // check (not a verify callback) so a mismatch has its own verdict ("IP address mismatch").
    X509_VERIFY_PARAM* param = SSL_get0_param(impl_->stream.native_handle());
    boost::system::error_code ec;
    asio::ip::make_address(peer_host, ec);
    if (!ec) {
      X509_VERIFY_PARAM_set1_ip_asc(param, peer_host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, peer_host.c_str(), peer_host.size());
    }
  }
}

TlsSession::~TlsSession() = default;

void TlsSession::AsyncHandshake(Strand& strand, HandshakeHandler handler) {
  impl_->stream.async_handshake(
      impl_->role == Role::kClient ? asio::ssl::stream_base::client : asio::ssl::stream_base::server,
      asio::bind_executor(strand, std::move(handler)));
}

void TlsSession::AsyncReadSome(Strand& strand, asio::mutable_buffer buffer, IoHandler handler) {
  impl_->stream.async_read_some(buffer, asio::bind_executor(strand, std::move(handler)));
}

void TlsSession::AsyncWrite(Strand& strand, std::vector<asio::const_buffer> buffers, IoHandler handler) {
  asio::async_write(impl_->stream, buffers, asio::bind_executor(strand, std::move(handler)));
}

std::string TlsSession::Version() const { return SSL_get_version(impl_->stream.native_handle()); }

std::string TlsSession::Describe(const boost::system::error_code& ec) const {
  std::string text = ec.message();
  const long verdict = SSL_get_verify_result(impl_->stream.native_handle());
  if (verdict != X509_V_OK) {
    text += " (the peer's certificate: " + std::string(X509_verify_cert_error_string(verdict)) + ")";
  }
  return text;
}

bool IsTlsTruncation(const boost::system::error_code& ec) { return ec == asio::ssl::error::stream_truncated; }

bool IsTlsProtocolError(const boost::system::error_code& ec) {
  return ec.category() == asio::error::get_ssl_category();
}

}  // namespace internal
}  // namespace tandem::rpc
