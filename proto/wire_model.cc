#include "proto/wire_model.h"

namespace tandem {

SamplingParams SamplingFromProto(const proto::SamplingParams& p) {
  SamplingParams s;
  s.temperature = p.temperature();
  s.top_k = p.top_k();
  s.top_p = p.top_p() == 0.0f ? 1.0f : p.top_p();
  s.min_p = p.min_p();
  s.repetition_penalty = p.repetition_penalty() == 0.0f ? 1.0f : p.repetition_penalty();
  s.presence_penalty = p.presence_penalty();
  s.frequency_penalty = p.frequency_penalty();
  if (p.has_seed()) s.seed = p.seed();
  s.max_tokens = static_cast<int32_t>(p.max_tokens());
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.ignore_eos = p.ignore_eos();
  return s;
}

proto::SamplingParams SamplingToProto(const SamplingParams& s) {
  proto::SamplingParams p;
  p.set_temperature(s.temperature);
  p.set_top_k(s.top_k);
  p.set_top_p(s.top_p);
  p.set_min_p(s.min_p);
  p.set_repetition_penalty(s.repetition_penalty);
  p.set_presence_penalty(s.presence_penalty);
  p.set_frequency_penalty(s.frequency_penalty);
  if (s.seed) p.set_seed(*s.seed);
  p.set_max_tokens(static_cast<uint32_t>(s.max_tokens));
  for (int32_t t : s.stop_token_ids) p.add_stop_token_ids(t);
  p.set_ignore_eos(s.ignore_eos);
  return p;
}

proto::FinishReason FinishReasonToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return proto::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kStop: return proto::FINISH_REASON_STOP;
    case FinishReason::kLength: return proto::FINISH_REASON_LENGTH;
    case FinishReason::kAbort: return proto::FINISH_REASON_ABORT;
    case FinishReason::kError: return proto::FINISH_REASON_ERROR;
  }
  return proto::FINISH_REASON_UNSPECIFIED;
}

FinishReason FinishReasonFromProto(proto::FinishReason r) {
  switch (r) {
    case proto::FINISH_REASON_LENGTH: return FinishReason::kLength;
    case proto::FINISH_REASON_ABORT: return FinishReason::kAbort;
    case proto::FINISH_REASON_ERROR: return FinishReason::kError;
    default: return FinishReason::kStop;
  }
}

}  // namespace tandem
