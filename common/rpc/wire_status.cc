#include "common/rpc/wire_status.h"

namespace tandem::rpc {

proto::ErrorCode ToProtoErrorCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return proto::ERROR_CODE_OK;
    case StatusCode::kInvalidArgument:
      return proto::ERROR_CODE_INVALID_ARGUMENT;
    case StatusCode::kNotFound:
      return proto::ERROR_CODE_NOT_FOUND;
    case StatusCode::kAlreadyExists:
      return proto::ERROR_CODE_ALREADY_EXISTS;
    case StatusCode::kOutOfRange:
      return proto::ERROR_CODE_OUT_OF_RANGE;
    case StatusCode::kResourceExhausted:
      return proto::ERROR_CODE_RESOURCE_EXHAUSTED;
    case StatusCode::kFailedPrecondition:
      return proto::ERROR_CODE_FAILED_PRECONDITION;
    case StatusCode::kUnavailable:
      return proto::ERROR_CODE_UNAVAILABLE;
    case StatusCode::kDeadlineExceeded:
      return proto::ERROR_CODE_DEADLINE_EXCEEDED;
    case StatusCode::kAborted:
      return proto::ERROR_CODE_ABORTED;
    case StatusCode::kDataLoss:
      return proto::ERROR_CODE_DATA_LOSS;
    case StatusCode::kUnimplemented:
      return proto::ERROR_CODE_UNIMPLEMENTED;
    case StatusCode::kInternal:
      return proto::ERROR_CODE_INTERNAL;
  }
  return proto::ERROR_CODE_INTERNAL;
}

StatusCode FromProtoErrorCode(proto::ErrorCode code) {
  switch (code) {
    case proto::ERROR_CODE_OK:
      return StatusCode::kOk;
    case proto::ERROR_CODE_INVALID_ARGUMENT:
      return StatusCode::kInvalidArgument;
    case proto::ERROR_CODE_NOT_FOUND:
      return StatusCode::kNotFound;
    case proto::ERROR_CODE_ALREADY_EXISTS:
      return StatusCode::kAlreadyExists;
    case proto::ERROR_CODE_OUT_OF_RANGE:
      return StatusCode::kOutOfRange;
    case proto::ERROR_CODE_RESOURCE_EXHAUSTED:
      return StatusCode::kResourceExhausted;
    case proto::ERROR_CODE_FAILED_PRECONDITION:
      return StatusCode::kFailedPrecondition;
    case proto::ERROR_CODE_UNAVAILABLE:
      return StatusCode::kUnavailable;
    case proto::ERROR_CODE_DEADLINE_EXCEEDED:
      return StatusCode::kDeadlineExceeded;
    case proto::ERROR_CODE_ABORTED:
      return StatusCode::kAborted;
    case proto::ERROR_CODE_DATA_LOSS:
      return StatusCode::kDataLoss;
    case proto::ERROR_CODE_UNIMPLEMENTED:
      return StatusCode::kUnimplemented;
    case proto::ERROR_CODE_INTERNAL:
      return StatusCode::kInternal;
    default:
      return StatusCode::kInternal;
  }
}

proto::Envelope MakeErrorEnvelope(const Status& status, const std::string& request_id) {
  proto::Envelope env;
  proto::Error* error = env.mutable_error();
  error->set_request_id(request_id);
  error->set_code(ToProtoErrorCode(status.code()));
  error->set_message(status.message());
  return env;
}

Status StatusFromError(const proto::Error& error) {
  const StatusCode code = FromProtoErrorCode(error.code());
  if (code == StatusCode::kOk) return Status::Ok();
  std::string message = error.request_id().empty()
                            ? error.message()
                            : "request " + error.request_id() + ": " + error.message();
  return Status(code, std::move(message));
}

}  // namespace tandem::rpc
