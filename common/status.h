// The one error type of Tandem: every module boundary returns Status or Result<T>.
// Exceptions are for start-up and configuration only and are caught in main().
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tandem {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is wrong (bad flag, bad request field, bad file)
  kNotFound,           // a file, tensor, model or request that does not exist
  kAlreadyExists,
  kOutOfRange,         // e.g. prompt longer than the context window
  kResourceExhausted,  // no free KV blocks, queue full, frame too large
  kFailedPrecondition,
  kUnavailable,        // a peer is down or not ready
  kDeadlineExceeded,   // a wait timed out
  kAborted,            // cancelled by the client or by a peer
  kDataLoss,           // corrupt or truncated data
  kUnimplemented,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "INVALID_ARGUMENT: message" (or "OK").
  std::string ToString() const;

  // Prepends context, outermost first: "loading model dir: reading x.safetensors: ...".
  Status WithContext(std::string_view context) const;

  // A short machine-readable cause, for callers that answer one cause of a code differently
  // (e.g. "slo_unattainable" among ResourceExhausted answers 429 with its own error code); ""
  // for most statuses. WithContext keeps it.
  const std::string& reason() const { return reason_; }
  Status WithReason(std::string_view reason) const;

  // Explicitly drops a status where failure is harmless; greppable on purpose.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string reason_;
};

Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status OutOfRangeError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status UnavailableError(std::string message);
Status DeadlineExceededError(std::string message);
Status AbortedError(std::string message);
Status DataLossError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);

// A value or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "Result constructed from an OK status");
    if (status_.ok()) status_ = InternalError("Result constructed from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

namespace internal {
inline const Status& AsStatus(const Status& s) { return s; }
template <typename T>
const Status& AsStatus(const Result<T>& r) { return r.status(); }
Status AnnotateStatus(const Status& s, const char* expr, const char* file, int line);
}  // namespace internal

}  // namespace tandem

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)

// Returns the error of a Status- or Result-valued expression, noting the call and file:line.
#define RETURN_IF_ERROR(expr)                                                              \
  do {                                                                                     \
    const auto& _tandem_st = (expr);                                                       \
    if (!::tandem::internal::AsStatus(_tandem_st).ok())                                    \
      return ::tandem::internal::AnnotateStatus(::tandem::internal::AsStatus(_tandem_st), \
                                                #expr, __FILE__, __LINE__);                \
  } while (0)

#define TANDEM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                                            \
  auto tmp = (expr);                                                                            \
  if (!tmp.ok())                                                                                \
    return ::tandem::internal::AnnotateStatus(tmp.status(), #expr, __FILE__, __LINE__);         \
  lhs = std::move(tmp).value()

// ASSIGN_OR_RETURN(auto x, MakeX());
#define ASSIGN_OR_RETURN(lhs, expr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL(TANDEM_CONCAT(_tandem_result_, __LINE__), lhs, expr)
