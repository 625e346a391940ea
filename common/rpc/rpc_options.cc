#include "common/rpc/rpc_options.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/rpc/cluster_auth.h"

namespace tandem::rpc {
namespace {

Status RequirePositive(std::chrono::milliseconds value, const char* name) {
  if (value.count() <= 0) {
    return InvalidArgumentError(std::string("ConnectionOptions.") + name + " must be positive, got " +
                                std::to_string(value.count()) + " ms");
  }
  return Status::Ok();
}

}  // namespace

Status ConnectionOptions::Validate() const {
  if (max_frame_bytes == 0 || max_frame_bytes > kMaxRepresentableFrameBytes) {
    return InvalidArgumentError("ConnectionOptions.max_frame_bytes must be in [1, 2^32-1], got " +
                                std::to_string(max_frame_bytes));
  }
  if (max_queued_frames == 0) {
    return InvalidArgumentError("ConnectionOptions.max_queued_frames must be positive");
  }
  if (max_queued_bytes < max_frame_bytes + kFrameHeaderBytes) {
    return InvalidArgumentError("ConnectionOptions.max_queued_bytes (" + std::to_string(max_queued_bytes) +
                                ") must hold at least one maximal frame (" +
                                std::to_string(max_frame_bytes + kFrameHeaderBytes) + ")");
  }
  if (!cluster_secret.empty() && cluster_secret.size() < kMinClusterSecretBytes) {
    return InvalidArgumentError("ConnectionOptions.cluster_secret must hold at least " +
                                std::to_string(kMinClusterSecretBytes) + " bytes");
  }
  RETURN_IF_ERROR(RequirePositive(connect_timeout, "connect_timeout"));
  RETURN_IF_ERROR(RequirePositive(hello_timeout, "hello_timeout"));
  RETURN_IF_ERROR(RequirePositive(heartbeat_interval, "heartbeat_interval"));
  RETURN_IF_ERROR(RequirePositive(idle_timeout, "idle_timeout"));
  RETURN_IF_ERROR(RequirePositive(write_timeout, "write_timeout"));
  RETURN_IF_ERROR(RequirePositive(drain_timeout, "drain_timeout"));
  if (idle_timeout <= heartbeat_interval) {
    return InvalidArgumentError("ConnectionOptions.idle_timeout (" + std::to_string(idle_timeout.count()) +
                                " ms) must exceed heartbeat_interval (" + std::to_string(heartbeat_interval.count()) +
                                " ms)");
  }
  return Status::Ok();
}

Status BackoffOptions::Validate() const {
  if (initial.count() <= 0 || max < initial) {
    return InvalidArgumentError("BackoffOptions needs 0 < initial <= max, got initial=" +
                                std::to_string(initial.count()) + " ms, max=" + std::to_string(max.count()) + " ms");
  }
  if (!(multiplier >= 1.0) || !std::isfinite(multiplier)) {
    return InvalidArgumentError("BackoffOptions.multiplier must be >= 1, got " + std::to_string(multiplier));
  }
  if (max_attempts < 0) {
    return InvalidArgumentError("BackoffOptions.max_attempts must be >= 0, got " + std::to_string(max_attempts));
  }
  return Status::Ok();
}

std::chrono::milliseconds BackoffDelay(const BackoffOptions& options, int failures) {
  const double exponent = std::max(0, failures - 1);
  const double delay = static_cast<double>(options.initial.count()) * std::pow(options.multiplier, exponent);
  // pow may overflow to inf for long outages; clamp in double before converting.
  const double capped = std::min(delay, static_cast<double>(options.max.count()));
  return std::chrono::milliseconds(static_cast<int64_t>(capped));
}

}  // namespace tandem::rpc
