// Wire framing of the control plane: every frame is a 4-byte big-endian length followed by that
// many bytes of a serialized tandem::proto::Envelope. Pure functions and a byte-fed decoder, no
// sockets, so partial reads and hostile lengths are unit-testable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "proto/tandem.pb.h"

namespace tandem::rpc {

// The protocol version this build speaks; the .proto is the source of truth.
inline constexpr uint32_t kProtocolVersion = proto::PROTOCOL_VERSION_CURRENT;

inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr size_t kDefaultMaxFrameBytes = size_t{64} << 20;  // 64 MiB of payload
// The length field is 32 bits; no limit may exceed what it can say.
inline constexpr size_t kMaxRepresentableFrameBytes = 0xFFFFFFFFu;

// Appends header + serialized `envelope` to `*out`.
// ResourceExhausted if the payload is larger than `max_frame_bytes` (nothing is appended);
// Internal if protobuf fails to serialize.
Status AppendFrame(const proto::Envelope& envelope, size_t max_frame_bytes, std::string* out);

// Convenience form of AppendFrame.
Result<std::string> EncodeFrame(const proto::Envelope& envelope, size_t max_frame_bytes);

// Reads the big-endian length of a frame header. REQUIRES: header.size() >= kFrameHeaderBytes.
uint32_t DecodeFrameLength(std::string_view header);

// Reassembles frames from a byte stream fed in arbitrary pieces (one byte at a time, several
// frames at once, a header split across reads). An oversize length is reported as soon as the
// header is complete, before its body arrives, so a hostile peer cannot make us buffer 4 GiB.
// Errors are sticky: after one, the stream is unusable and Next keeps returning it.
// Not thread-safe; owned by one connection.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame_bytes = kDefaultMaxFrameBytes);

  void Append(const char* data, size_t size);
  void Append(std::string_view bytes) { Append(bytes.data(), bytes.size()); }

  // Extracts the next complete frame into *out: true if one was extracted, false if more bytes
  // are needed. ResourceExhausted for a length above the limit, DataLoss for a body that is not
  // an Envelope.
  Result<bool> Next(proto::Envelope* out);

  // Forgets buffered bytes and any error (a new connection incarnation starts clean).
  void Reset();

  size_t buffered_bytes() const { return buffer_.size() - read_pos_; }
  size_t max_frame_bytes() const { return max_frame_bytes_; }

 private:
  size_t max_frame_bytes_;
  std::string buffer_;
  size_t read_pos_ = 0;  // bytes of buffer_ already consumed; compacted lazily
  Status error_;
};

}  // namespace tandem::rpc
