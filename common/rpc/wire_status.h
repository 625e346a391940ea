// Status <-> proto::ErrorCode at the process boundary. The enums share numbers by design; the
// conversion still goes through a switch so a renumbering cannot silently mistranslate.
#pragma once

#include "common/status.h"
#include "proto/tandem.pb.h"

namespace tandem::rpc {

proto::ErrorCode ToProtoErrorCode(StatusCode code);
// Unknown codes from a newer peer become kInternal rather than being misread.
StatusCode FromProtoErrorCode(proto::ErrorCode code);

// Envelope carrying an Error for `request_id` (empty for none).
proto::Envelope MakeErrorEnvelope(const Status& status, const std::string& request_id);
// The Status an Error message describes (message prefixed with the request id, if any).
Status StatusFromError(const proto::Error& error);

}  // namespace tandem::rpc
