#include "common/rpc/frame_codec.h"

#include <limits>

namespace tandem::rpc {

Status AppendFrame(const proto::Envelope& envelope, size_t max_frame_bytes, std::string* out) {
  const size_t body = envelope.ByteSizeLong();
  const size_t limit = std::min(max_frame_bytes, kMaxRepresentableFrameBytes);
  if (body > limit) {
    return ResourceExhaustedError("frame of " + std::to_string(body) +
                                  " bytes exceeds the limit of " + std::to_string(limit) +
                                  " bytes");
  }
  const size_t start = out->size();
  out->resize(start + kFrameHeaderBytes + body);
  char* p = out->data() + start;
  const uint32_t len = static_cast<uint32_t>(body);
  p[0] = static_cast<char>((len >> 24) & 0xFF);
  p[1] = static_cast<char>((len >> 16) & 0xFF);
  p[2] = static_cast<char>((len >> 8) & 0xFF);
  p[3] = static_cast<char>(len & 0xFF);
  if (body > 0 && !envelope.SerializeToArray(p + kFrameHeaderBytes, static_cast<int>(body))) {
    out->resize(start);
    return InternalError("protobuf failed to serialize an Envelope of " + std::to_string(body) +
                         " bytes");
  }
  return Status::Ok();
}

Result<std::string> EncodeFrame(const proto::Envelope& envelope, size_t max_frame_bytes) {
  std::string out;
  RETURN_IF_ERROR(AppendFrame(envelope, max_frame_bytes, &out));
  return out;
}

uint32_t DecodeFrameLength(std::string_view header) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(header[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

FrameDecoder::FrameDecoder(size_t max_frame_bytes)
    : max_frame_bytes_(std::min(max_frame_bytes, kMaxRepresentableFrameBytes)) {}

void FrameDecoder::Append(const char* data, size_t size) {
  if (!error_.ok() || size == 0) return;
  // Compact only when the consumed prefix dominates, so steady streaming stays O(bytes).
  if (read_pos_ > 0 && read_pos_ >= buffer_.size() / 2) {
    buffer_.erase(0, read_pos_);
    read_pos_ = 0;
  }
  buffer_.append(data, size);
}

Result<bool> FrameDecoder::Next(proto::Envelope* out) {
  if (!error_.ok()) return error_;
  const size_t available = buffer_.size() - read_pos_;
  if (available < kFrameHeaderBytes) return false;
  const std::string_view view(buffer_.data() + read_pos_, available);
  const uint32_t len = DecodeFrameLength(view);
  if (len > max_frame_bytes_) {
    error_ = ResourceExhaustedError("incoming frame of " + std::to_string(len) +
                                    " bytes exceeds the limit of " +
                                    std::to_string(max_frame_bytes_) + " bytes");
    return error_;
  }
  if (available - kFrameHeaderBytes < len) return false;
  // Protobuf's parser takes an int size; len <= 4 GiB - 1 may exceed it, so refuse explicitly.
  if (len > static_cast<uint32_t>(std::numeric_limits<int>::max()) ||
      !out->ParseFromArray(view.data() + kFrameHeaderBytes, static_cast<int>(len))) {
    error_ = DataLossError("incoming frame of " + std::to_string(len) +
                           " bytes is not a valid Envelope");
    return error_;
  }
  read_pos_ += kFrameHeaderBytes + len;
  if (read_pos_ == buffer_.size()) {
    buffer_.clear();
    read_pos_ = 0;
  }
  return true;
}

void FrameDecoder::Reset() {
  buffer_.clear();
  buffer_.shrink_to_fit();
  read_pos_ = 0;
  error_ = Status::Ok();
}

}  // namespace tandem::rpc
