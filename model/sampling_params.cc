#include "model/sampling_params.h"

#include <cmath>
#include <string>

namespace tandem {

Status SamplingParams::Validate() const {
  auto bad = [](const char* field, const std::string& why) {
    return InvalidArgumentError(std::string(field) + " " + why);
  };
  if (!std::isfinite(temperature) || temperature < 0.0f) return bad("temperature", "must be >= 0");
  if (top_k < -1) return bad("top_k", "must be -1, 0 (off) or positive");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return bad("top_p", "must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return bad("min_p", "must be in [0, 1]");
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return bad("repetition_penalty", "must be > 0");
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) return bad("presence_penalty", "must be in [-2, 2]");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) return bad("frequency_penalty", "must be in [-2, 2]");
  if (max_tokens < 1) return bad("max_tokens", "must be >= 1");
  return Status::Ok();
}

}  // namespace tandem
