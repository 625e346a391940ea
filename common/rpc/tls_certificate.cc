#include "common/rpc/tls_certificate.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace tandem::rpc {
namespace {

struct FreeKey {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct FreeCert {
  void operator()(X509* x) const { X509_free(x); }
};
struct CloseFile {
  void operator()(FILE* f) const { std::fclose(f); }
};

Status AddExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return InvalidArgumentError("certificate extension '" + value + "' is not valid");
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (added != 1) return InternalError("cannot add certificate extension '" + value + "'");
  return Status::Ok();
}

Result<std::unique_ptr<FILE, CloseFile>> OpenForWrite(const std::string& path, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  (void)::fchmod(fd, mode);  // an existing file keeps its mode through O_CREAT
  FILE* f = ::fdopen(fd, "w");
  if (f == nullptr) {
    ::close(fd);
    return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<FILE, CloseFile>(f);
}

}  // namespace

Status WriteSelfSignedCertificate(const std::string& cert_path, const std::string& key_path,
                                  const std::vector<std::string>& names, int days) {
  if (names.empty()) return InvalidArgumentError("a certificate needs at least one name (IP address or host name)");
  if (days < 1)
    return InvalidArgumentError("a certificate must be valid for at least a day, got " + std::to_string(days));
  std::string alt_names;
  for (const std::string& name : names) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(name, ec);
    const bool host_name = !name.empty() && name.find_first_not_of(
                                                "abcdefghijklmnopqrstuvwxyz"
                                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == std::string::npos;
    if (ec && !host_name) return InvalidArgumentError("'" + name + "' is not an IP address or host name");
    alt_names += (alt_names.empty() ? "" : ",") + std::string(ec ? "DNS:" : "IP:") + name;
  }

  std::unique_ptr<EVP_PKEY, FreeKey> key(EVP_EC_gen("P-256"));
  std::unique_ptr<X509, FreeCert> cert(X509_new());
  if (!key || !cert) return InternalError("OpenSSL cannot make a key or certificate");
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) return InternalError("no randomness for a serial number");
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  const bool ok =
      serial != nullptr && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) != nullptr &&
      X509_set_version(cert.get(), 2) == 1 &&
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr &&  // tolerate clock skew
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), int64_t{days} * 86400) != nullptr &&
      X509_set_pubkey(cert.get(), key.get()) == 1 &&
      X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("tandem cluster"), -1, -1, 0) == 1 &&
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) == 1;
  BN_free(serial);
  if (!ok) return InternalError("OpenSSL cannot fill in the certificate");
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_alt_name, alt_names));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return InternalError("OpenSSL cannot sign the certificate");

  {
    ASSIGN_OR_RETURN(auto key_file, OpenForWrite(key_path, 0600));
    if (PEM_write_PrivateKey(key_file.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      return UnavailableError("cannot write the private key " + key_path);
    }
  }
  ASSIGN_OR_RETURN(auto cert_file, OpenForWrite(cert_path, 0644));
  if (PEM_write_X509(cert_file.get(), cert.get()) != 1)
    return UnavailableError("cannot write the certificate " + cert_path);
  return Status::Ok();
}

}  // namespace tandem::rpc
