// Limits and timeouts of the control-plane transport. Every wait has a bound; defaults suit a
// cluster on one rack, tests shrink them to keep the suite fast.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "common/rpc/frame_codec.h"
#include "common/status.h"

namespace tandem::rpc {

class TlsContext;  // common/rpc/tls.h

// --tls-cert, --tls-key, --tls-ca (common/rpc/tls.h: LoadTlsContext). All empty: plain TCP.
struct TlsFiles {
  std::string cert_file;  // PEM: this process's certificate (chain)
  std::string key_file;   // PEM: its private key
  std::string ca_file;    // PEM: the CA (or self-signed certificate) peers' certificates chain to

  bool empty() const { return cert_file.empty() && key_file.empty() && ca_file.empty(); }
};

struct ConnectionOptions {
  // Largest Envelope payload accepted on read and on write.
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Outgoing queue bounds; Send returns ResourceExhausted when either would be exceeded.
  size_t max_queued_frames = 4096;
  size_t max_queued_bytes = size_t{256} << 20;

  std::chrono::milliseconds connect_timeout{2000};  // TCP connect (client side)
  std::chrono::milliseconds hello_timeout{2000};    // Hello/HelloAck after TCP is up
  // Each side sends a Heartbeat when it has written nothing for this long while ready...
  std::chrono::milliseconds heartbeat_interval{500};
  // ...and closes with DeadlineExceeded when it has read nothing for this long. Must exceed
  // the *peer's* heartbeat_interval; a few intervals absorb scheduling hiccups.
  std::chrono::milliseconds idle_timeout{3000};
  // A write that makes no progress for this long closes the connection (peer stopped reading).
  std::chrono::milliseconds write_timeout{5000};
  // Orderly close: flush the queue and exchange FINs within this bound, then close anyway.
  std::chrono::milliseconds drain_timeout{1000};
  // Non-empty: peers must prove they hold the same secret before anything else they send is
  // read (common/rpc/cluster_auth.h); at least kMinClusterSecretBytes.
  std::string cluster_secret;
  // Non-null: the connection speaks TLS (common/rpc/tls.h, LoadTlsContext) before its Hello;
  // both ends must have it.
  std::shared_ptr<TlsContext> tls;

  // InvalidArgument naming the first bad field.
  Status Validate() const;
};

// Client reconnection: the delay after the n-th consecutive failure is
// min(initial * multiplier^(n-1), max). Deterministic on purpose (tests and logs are
// reproducible); clusters here are small enough that synchronized retries are harmless.
struct BackoffOptions {
  std::chrono::milliseconds initial{50};
  std::chrono::milliseconds max{2000};
  double multiplier = 2.0;
  // Consecutive failed attempts (connect, handshake, or a drop before ready) after which the
  // client gives up; 0 retries forever. A refused Hello always gives up at once.
  int max_attempts = 0;

  Status Validate() const;
};

// REQUIRES: failures >= 1.
std::chrono::milliseconds BackoffDelay(const BackoffOptions& options, int failures);

}  // namespace tandem::rpc
