// Conversions between the model's plain types and their wire messages, shared by the router and
// the nodes so that both ends read a field the same way.
#pragma once

#include "slo/request_record.h"
#include "model/sampling_params.h"
#include "proto/tandem.pb.h"

namespace tandem {

// proto3 leaves unset floats at 0: top_p and repetition_penalty 0 mean "unset" (1).
SamplingParams SamplingFromProto(const proto::SamplingParams& p);
proto::SamplingParams SamplingToProto(const SamplingParams& s);
proto::FinishReason FinishReasonToProto(FinishReason r);
// A finished message that names no reason counts as kStop.
FinishReason FinishReasonFromProto(proto::FinishReason r);

}  // namespace tandem
