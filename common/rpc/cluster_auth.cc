#include "common/rpc/cluster_auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/file_io.h"
#include "common/logging.h"

namespace tandem::rpc {
namespace {

std::string Hmac(std::string_view secret, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

// Labels keep the two proofs apart: a server proof is never a valid client proof.
std::string Transcript(std::string_view label, std::string_view client_nonce, std::string_view server_nonce,
                       std::string_view client_node_id) {
  std::string m;
  m.reserve(label.size() + 1 + client_nonce.size() + server_nonce.size() + client_node_id.size());
  m.append(label).push_back('\0');
  m.append(client_nonce).append(server_nonce).append(client_node_id);
  return m;
}

}  // namespace

std::string NewAuthNonce() {
  std::string nonce(kAuthNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), static_cast<int>(nonce.size())) != 1) {
    // Without randomness a nonce could repeat: fail the handshake rather than weaken it.
    return {};
  }
  return nonce;
}

std::string ServerAuthProof(std::string_view secret, std::string_view client_nonce, std::string_view server_nonce) {
  return Hmac(secret, Transcript("tandem-auth-v1 server", client_nonce, server_nonce, {}));
}

std::string ClientAuthProof(std::string_view secret, std::string_view client_nonce, std::string_view server_nonce,
                            std::string_view client_node_id) {
  return Hmac(secret, Transcript("tandem-auth-v1 client", client_nonce, server_nonce, client_node_id));
}

bool AuthProofMatches(std::string_view expected, std::string_view given) {
  return !expected.empty() && expected.size() == given.size() &&
         CRYPTO_memcmp(expected.data(), given.data(), expected.size()) == 0;
}

Result<std::string> LoadClusterSecret(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  const size_t begin = text.find_first_not_of(" \t\r\n");
  const size_t end = text.find_last_not_of(" \t\r\n");
  std::string secret = begin == std::string::npos ? std::string() : text.substr(begin, end - begin + 1);
  if (secret.size() < kMinClusterSecretBytes) {
    return InvalidArgumentError("cluster secret file " + path + " holds " + std::to_string(secret.size()) +
                                " bytes; at least " + std::to_string(kMinClusterSecretBytes) +
                                " are needed (e.g. `openssl rand -hex 32 > " + path + "`)");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    GetLogger("rpc")->warn("cluster secret file {} can be read by other users (chmod 600 it)", path);
  }
  return secret;
}

Status WriteNewClusterSecret(const std::string& path) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return InternalError("no randomness for a cluster secret");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  hex.push_back('\n');
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return UnavailableError("cannot write the cluster secret " + path + ": " + std::strerror(errno));
  (void)::fchmod(fd, 0600);  // an existing file keeps its mode through O_CREAT
  const ssize_t n = ::write(fd, hex.data(), hex.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(hex.size())) return UnavailableError("cannot write the cluster secret " + path);
  return Status::Ok();
}

}  // namespace tandem::rpc
