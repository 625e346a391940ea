#include "kv_transfer/bootstrap_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace tandem {
namespace {

class Writer {
 public:
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void Bytes(std::span<const uint8_t> b) {
    U64(b.size());
    out.insert(out.end(), b.begin(), b.end());
  }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  Result<uint64_t> U(int bytes) {
    if (in_.size() - pos_ < static_cast<size_t>(bytes)) return Truncated();
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(in_[pos_ + i]) << (8 * i);
    pos_ += bytes;
    return v;
  }
  Result<std::vector<uint8_t>> Bytes() {
    ASSIGN_OR_RETURN(uint64_t n, U(8));
    if (in_.size() - pos_ < n) return Truncated();
    std::vector<uint8_t> b(in_.begin() + pos_, in_.begin() + pos_ + n);
    pos_ += n;
    return b;
  }
  Status Done() const {
    if (pos_ != in_.size()) {
      return DataLossError("bootstrap message has " + std::to_string(in_.size() - pos_) +
                           " trailing bytes");
    }
    return Status::Ok();
  }

 private:
  Status Truncated() const {
    return DataLossError("bootstrap message truncated at byte " + std::to_string(pos_));
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

int RemainingMs(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

BootstrapChannel::~BootstrapChannel() {
  if (fd_ >= 0) close(fd_);
}

Status BootstrapChannel::Send(uint32_t type, std::span<const uint8_t> payload,
                              std::chrono::milliseconds timeout) {
  if (payload.size() > kMaxPayloadBytes) {
    return InvalidArgumentError("bootstrap frame of " + std::to_string(payload.size()) +
                                " bytes exceeds the limit");
  }
  Writer w;
  w.U32(type);
  w.U32(static_cast<uint32_t>(payload.size()));
  w.out.insert(w.out.end(), payload.begin(), payload.end());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t sent = 0;
  while (sent < w.out.size()) {
    pollfd p{fd_, POLLOUT, 0};
    const int ready = poll(&p, 1, RemainingMs(deadline));
    if (ready == 0) return DeadlineExceededError("bootstrap send timed out");
    if (ready < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(std::string("bootstrap poll: ") + std::strerror(errno));
    }
    const ssize_t n = ::send(fd_, w.out.data() + sent, w.out.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return UnavailableError(std::string("bootstrap send: ") + std::strerror(errno));
    }
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status BootstrapChannel::ReadExactly(uint8_t* out, size_t n,
                                     std::chrono::steady_clock::time_point deadline) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = poll(&p, 1, RemainingMs(deadline));
    if (ready == 0) return DeadlineExceededError("bootstrap receive timed out");
    if (ready < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(std::string("bootstrap poll: ") + std::strerror(errno));
    }
    const ssize_t r = ::recv(fd_, out + got, n - got, 0);
    if (r == 0) return UnavailableError("bootstrap peer closed the connection");
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return UnavailableError(std::string("bootstrap recv: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

Result<Frame> BootstrapChannel::Receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  uint8_t header[8];
  RETURN_IF_ERROR(ReadExactly(header, sizeof(header), deadline));
  Reader r(header);
  Frame frame;
  frame.type = static_cast<uint32_t>(*r.U(4));
  const uint64_t size = *r.U(4);
  if (size > kMaxPayloadBytes) {
    return DataLossError("bootstrap frame announces " + std::to_string(size) + " bytes");
  }
  frame.payload.resize(size);
  RETURN_IF_ERROR(ReadExactly(frame.payload.data(), size, deadline));
  return frame;
}

Result<std::optional<Frame>> BootstrapChannel::TryReceive(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  const int ready = poll(&p, 1, 0);
  if (ready < 0 && errno != EINTR) {
    return UnavailableError(std::string("bootstrap poll: ") + std::strerror(errno));
  }
  if (ready <= 0) return std::optional<Frame>();
  ASSIGN_OR_RETURN(Frame f, Receive(timeout));
  return std::optional<Frame>(std::move(f));
}

std::vector<uint8_t> EncodePeerEndpoint(const PeerEndpoint& e) {
  Writer w;
  w.Bytes(e.worker_address);
  w.Bytes(e.rkey);
  w.U64(e.base_address);
  w.U64(e.region_bytes);
  return w.out;
}

Result<PeerEndpoint> DecodePeerEndpoint(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  PeerEndpoint e;
  ASSIGN_OR_RETURN(e.worker_address, r.Bytes());
  ASSIGN_OR_RETURN(e.rkey, r.Bytes());
  ASSIGN_OR_RETURN(e.base_address, r.U(8));
  ASSIGN_OR_RETURN(e.region_bytes, r.U(8));
  RETURN_IF_ERROR(r.Done());
  return e;
}

std::vector<uint8_t> EncodeReservation(const KvReservation& res) {
  Writer w;
  w.U64(res.request_id);
  w.U64(res.layout_hash);
  w.U32(static_cast<uint32_t>(res.pool_num_blocks));
  w.U64(res.block_ids.size());
  for (int id : res.block_ids) w.U32(static_cast<uint32_t>(id));
  return w.out;
}

Result<KvReservation> DecodeReservation(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  KvReservation res;
  ASSIGN_OR_RETURN(res.request_id, r.U(8));
  ASSIGN_OR_RETURN(res.layout_hash, r.U(8));
  ASSIGN_OR_RETURN(uint64_t pool, r.U(4));
  res.pool_num_blocks = static_cast<int>(pool);
  ASSIGN_OR_RETURN(uint64_t n, r.U(8));
  if (n > bytes.size() / 4) return DataLossError("reservation block count too large");
  for (uint64_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(uint64_t id, r.U(4));
    res.block_ids.push_back(static_cast<int>(static_cast<int32_t>(id)));
  }
  RETURN_IF_ERROR(r.Done());
  return res;
}

std::vector<uint8_t> EncodeReadyNotice(const KvReadyNotice& n) {
  Writer w;
  w.U64(n.request_id);
  w.U64(n.layout_hash);
  w.U32(static_cast<uint32_t>(n.num_blocks));
  w.U64(n.bytes);
  return w.out;
}

Result<KvReadyNotice> DecodeReadyNotice(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  KvReadyNotice n;
  ASSIGN_OR_RETURN(n.request_id, r.U(8));
  ASSIGN_OR_RETURN(n.layout_hash, r.U(8));
  ASSIGN_OR_RETURN(uint64_t blocks, r.U(4));
  n.num_blocks = static_cast<int>(blocks);
  ASSIGN_OR_RETURN(n.bytes, r.U(8));
  RETURN_IF_ERROR(r.Done());
  return n;
}

std::vector<uint8_t> EncodeU64s(std::span<const uint64_t> values) {
  Writer w;
  w.U64(values.size());
  for (uint64_t v : values) w.U64(v);
  return w.out;
}

Result<std::vector<uint64_t>> DecodeU64s(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  ASSIGN_OR_RETURN(uint64_t n, r.U(8));
  if (n > bytes.size() / 8) return DataLossError("u64 list count too large");
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(uint64_t v, r.U(8));
    out.push_back(v);
  }
  RETURN_IF_ERROR(r.Done());
  return out;
}

}  // namespace tandem
