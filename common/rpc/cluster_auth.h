// Cluster authentication of control-plane peers: a secret shared by the router and every node
// (--cluster-secret-file), proven without sending it. The connecting side's Hello carries a
// fresh nonce; the accepting side answers AuthChallenge{its nonce, its proof}; the connecting
// side checks that proof and answers AuthProof; only then does the accepting side validate the
// Hello and send HelloAck. Each proof is HMAC-SHA256(secret, role label | both nonces | the
// connecting node's id), so neither side's proof can be replayed on another connection or
// reflected back as the other side's, and a peer without the secret learns nothing it can use.
// Nothing but the handshake frames is read from a peer before it has proven itself, and no UCX
// endpoint exists for it (those are made from a Ready peer's Hello).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace tandem::rpc {

inline constexpr size_t kAuthNonceBytes = 32;
inline constexpr size_t kMinClusterSecretBytes = 16;

// kAuthNonceBytes from the system's CSPRNG.
std::string NewAuthNonce();

// The accepting side's proof (it answers the connecting side's nonce first) and the connecting
// side's; 32 bytes each.
std::string ServerAuthProof(std::string_view secret, std::string_view client_nonce, std::string_view server_nonce);
std::string ClientAuthProof(std::string_view secret, std::string_view client_nonce, std::string_view server_nonce,
                            std::string_view client_node_id);

// Constant-time comparison (a mismatch's position is not revealed by its timing).
bool AuthProofMatches(std::string_view expected, std::string_view given);

// The secret from a file: its bytes less surrounding whitespace; at least kMinClusterSecretBytes.
// InvalidArgument for a short or empty secret, NotFound for a missing file. A file others can
// read is accepted with a warning (a generated one is written 0600).
Result<std::string> LoadClusterSecret(const std::string& path);

// A new random secret (hex, 64 characters) written to `path` with mode 0600.
Status WriteNewClusterSecret(const std::string& path);

}  // namespace tandem::rpc
