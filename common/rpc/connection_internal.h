// Small helpers shared by the rpc sources (connection, handshake, client, server); not part of
// the API.
#pragma once

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "proto/tandem.pb.h"

namespace tandem::rpc::internal {

// Runs `io` until it is stopped or runs out of work. Handlers catch their own exceptions; this
// is the last line should Asio itself throw: log and keep the io thread serving.
inline void RunIoContext(boost::asio::io_context& io, spdlog::logger& log, const char* who) {
  while (true) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      log.error("{} io loop: {}", who, e.what());
    } catch (...) {
      log.error("{} io loop: non-std exception", who);
    }
  }
}

inline std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

inline std::string PayloadName(const proto::Envelope& env) {
  if (env.payload_case() == proto::Envelope::PAYLOAD_NOT_SET) return "an empty envelope";
  const auto* field = proto::Envelope::descriptor()->FindFieldByNumber(env.payload_case());
  return field != nullptr ? field->name() : "payload #" + std::to_string(env.payload_case());
}

inline bool IsTransportPayload(proto::Envelope::PayloadCase c) {
  return c == proto::Envelope::kHello || c == proto::Envelope::kHelloAck || c == proto::Envelope::kAuthChallenge ||
         c == proto::Envelope::kAuthProof || c == proto::Envelope::kHeartbeat || c == proto::Envelope::kGoodbye;
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
