// A minimal control plane over a connected stream socket (a socketpair to a child process):
// typed, length-prefixed frames, with a deadline on every blocking read. Tests and the bench
// use it to exchange transport endpoints, reservations and "KV ready" between two processes;
// the nodes use the real control plane (proto/ over Asio) and the same plain structs.
//
// Frame: u32 type | u32 payload bytes | payload, little-endian.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/status.h"
#include "kv_transfer/transfer_session.h"
#include "kv_transfer/transport.h"

namespace tandem {

struct Frame {
  uint32_t type = 0;
  std::vector<uint8_t> payload;
};

class BootstrapChannel {
 public:
  static constexpr uint32_t kMaxPayloadBytes = 16u << 20;

  explicit BootstrapChannel(int fd) : fd_(fd) {}  // takes ownership
  ~BootstrapChannel();
  BootstrapChannel(const BootstrapChannel&) = delete;
  BootstrapChannel& operator=(const BootstrapChannel&) = delete;

  Status Send(uint32_t type, std::span<const uint8_t> payload, std::chrono::milliseconds timeout);
  // Blocks up to `timeout` for a whole frame. Unavailable when the peer closed the socket.
  Result<Frame> Receive(std::chrono::milliseconds timeout);
  // A frame if one has started to arrive (then read whole within `timeout`), else nullopt at
  // once: for loops that must keep progressing a transport while they wait.
  Result<std::optional<Frame>> TryReceive(std::chrono::milliseconds timeout);

 private:
  Status ReadExactly(uint8_t* out, size_t n, std::chrono::steady_clock::time_point deadline);
  int fd_;
};

// Plain encodings of the transfer structs for the channel (little-endian, length-checked).
std::vector<uint8_t> EncodePeerEndpoint(const PeerEndpoint& e);
Result<PeerEndpoint> DecodePeerEndpoint(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeReservation(const KvReservation& r);
Result<KvReservation> DecodeReservation(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeReadyNotice(const KvReadyNotice& n);
Result<KvReadyNotice> DecodeReadyNotice(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeU64s(std::span<const uint64_t> values);
Result<std::vector<uint64_t>> DecodeU64s(std::span<const uint8_t> bytes);

}  // namespace tandem
