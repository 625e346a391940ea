#include "slo/request_record.h"

#include <spdlog/fmt/fmt.h>

namespace tandem {

std::string_view FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
  }
  return "";
}

std::string RequestRecord::Summary() const {
  const auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  std::string line = fmt::format(
      "request {} {}: P={} D={} prompt={} output={} ttft_ms={:.2f} tpot_ms={:.2f} e2e_ms={:.1f} queue_ms={:.1f}", id,
      FinishReasonName(finish_reason), or_dash(prefill_node), or_dash(decode_node), prompt_tokens, output_tokens,
      ttft_ms(), tpot_ms(), e2e_ms(), queue_ms());
  if (prefill_start_us && prefill_end_us) {
    line += fmt::format(" prefill_ms={:.2f}", (prefill_end_us - prefill_start_us) / 1000.0);
  }
  if (kv_bytes >= 0) line += fmt::format(" kv_bytes={} kv_transfer_ms={:.2f}", kv_bytes, transfer_ms());
  if (decode_attempts > 1) line += fmt::format(" decode_attempts={}", decode_attempts);
  if (preemptions > 0) line += fmt::format(" preemptions={}", preemptions);
  if (!slo.empty()) {
    line += fmt::format(" slo={} slo_met={}", slo.class_name.empty() ? "custom" : slo.class_name, slo_met());
  }
  if (!status.ok()) line += " error=" + status.ToString();
  return line;
}

}  // namespace tandem
