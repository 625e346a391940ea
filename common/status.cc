#include "common/status.h"

#include <cstring>

namespace tandem {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  Status s(code_, std::move(msg));
  s.reason_ = reason_;
  return s;
}

Status Status::WithReason(std::string_view reason) const {
  Status s = *this;
  if (!ok()) s.reason_ = reason;
  return s;
}

#define TANDEM_DEFINE_ERROR(Name, Code) \
  Status Name(std::string message) { return Status(StatusCode::Code, std::move(message)); }
TANDEM_DEFINE_ERROR(InvalidArgumentError, kInvalidArgument)
TANDEM_DEFINE_ERROR(NotFoundError, kNotFound)
TANDEM_DEFINE_ERROR(AlreadyExistsError, kAlreadyExists)
TANDEM_DEFINE_ERROR(OutOfRangeError, kOutOfRange)
TANDEM_DEFINE_ERROR(ResourceExhaustedError, kResourceExhausted)
TANDEM_DEFINE_ERROR(FailedPreconditionError, kFailedPrecondition)
TANDEM_DEFINE_ERROR(UnavailableError, kUnavailable)
TANDEM_DEFINE_ERROR(DeadlineExceededError, kDeadlineExceeded)
TANDEM_DEFINE_ERROR(AbortedError, kAborted)
TANDEM_DEFINE_ERROR(DataLossError, kDataLoss)
TANDEM_DEFINE_ERROR(UnimplementedError, kUnimplemented)
TANDEM_DEFINE_ERROR(InternalError, kInternal)
#undef TANDEM_DEFINE_ERROR

namespace internal {

// The trace lives in the message, not in a side channel, so it survives every hop
// (logs, HTTP error bodies, protobuf error fields) unchanged. Only the basename is kept.
Status AnnotateStatus(const Status& s, const char* expr, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  std::string msg = s.message();
  msg += "\n    at ";
  msg += base;
  msg += ":";
  msg += std::to_string(line);
  msg += ": ";
  msg += expr;
  return Status(s.code(), std::move(msg));
}

}  // namespace internal
}  // namespace tandem
