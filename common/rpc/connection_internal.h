// Small helpers shared by connection.cc and connection_handshake.cc; not part of the API.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

#include "common/status.h"
#include "proto/tandem.pb.h"

namespace tandem::rpc::internal {

inline int64_t NowUnixUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

inline std::string PayloadName(const proto::Envelope& env) {
  if (env.payload_case() == proto::Envelope::PAYLOAD_NOT_SET) return "an empty envelope";
  const auto* field = proto::Envelope::descriptor()->FindFieldByNumber(env.payload_case());
  return field != nullptr ? field->name() : "payload #" + std::to_string(env.payload_case());
}

inline bool IsTransportPayload(proto::Envelope::PayloadCase c) {
  return c == proto::Envelope::kHello || c == proto::Envelope::kHelloAck ||
         c == proto::Envelope::kHeartbeat || c == proto::Envelope::kGoodbye;
}

// The boundary between user code and Asio: no exception crosses it.
template <typename Fn>
Status CatchAll(const char* what, Fn&& fn) {
  try {
    fn();
    return Status::Ok();
  } catch (const std::exception& e) {
    return InternalError(std::string(what) + " threw: " + e.what());
  } catch (...) {
    return InternalError(std::string(what) + " threw a non-std exception");
  }
}

}  // namespace tandem::rpc::internal
