#include "slo/request_log.h"

#include <cerrno>
#include <cstring>

#include "common/clock.h"

namespace tandem {

namespace {

nlohmann::ordered_json MsAfter(int64_t stamp_us, int64_t arrival_us) {
  if (stamp_us == 0 || arrival_us == 0) return nullptr;
  return (stamp_us - arrival_us) / 1000.0;
}

}  // namespace

nlohmann::ordered_json RequestLogLine(const RequestRecord& r, int64_t steady_to_unix_us) {
  const bool normal = r.finish_reason == FinishReason::kStop || r.finish_reason == FinishReason::kLength;
  nlohmann::ordered_json j;
  j["timestamp"] = (r.arrival_us + steady_to_unix_us) / 1000.0;
  j["input_length"] = r.prompt_tokens;
  j["output_length"] = normal || r.max_tokens <= 0 ? std::max(r.output_tokens, 1) : r.max_tokens;
  j["slo_class"] = r.slo.class_name;
  j["request_id"] = r.id;
  j["finish_reason"] = std::string(FinishReasonName(r.finish_reason));
  j["error"] = r.status.ok() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.status.ToString());
  j["max_tokens"] = r.max_tokens;
  j["output_tokens"] = r.output_tokens;
  j["prefill_node"] = r.prefill_node;
  j["decode_node"] = r.decode_node;
  j["decode_attempts"] = r.decode_attempts;
  j["preemptions"] = r.preemptions;
  j["ttft_ms"] = r.first_token_us ? nlohmann::ordered_json(r.ttft_ms()) : nullptr;
  j["tpot_ms"] = r.tpot_ms();
  j["e2e_ms"] = r.finish_us ? nlohmann::ordered_json(r.e2e_ms()) : nullptr;
  j["queue_ms"] = r.queue_ms();
  j["slo_ttft_ms"] = r.slo.ttft_ms > 0 ? nlohmann::ordered_json(r.slo.ttft_ms) : nullptr;
  j["slo_tpot_ms"] = r.slo.tpot_ms > 0 ? nlohmann::ordered_json(r.slo.tpot_ms) : nullptr;
  if (r.slo.empty()) {
    j["ttft_met"] = j["tpot_met"] = j["slo_met"] = nullptr;
  } else {
    j["ttft_met"] = normal && r.slo.TtftMet(r.ttft_ms());
    j["tpot_met"] = normal && r.slo.TpotMet(r.tpot_ms());
    j["slo_met"] = r.slo_met();
  }
  j["kv_bytes"] = r.kv_bytes >= 0 ? nlohmann::ordered_json(r.kv_bytes) : nullptr;
  const int64_t a = r.arrival_us;
  j["stamps_ms"] = {{"queued", MsAfter(r.queued_us, a)},
                    {"placed", MsAfter(r.placed_us, a)},
                    {"prefill_start", MsAfter(r.prefill_start_us, a)},
                    {"prefill_end", MsAfter(r.prefill_end_us, a)},
                    {"transfer_start", MsAfter(r.transfer_start_us, a)},
                    {"transfer_end", MsAfter(r.transfer_end_us, a)},
                    {"decode_admitted", MsAfter(r.decode_admitted_us, a)},
                    {"first_token", MsAfter(r.first_token_us, a)},
                    {"last_token", r.output_tokens == 0 ? nullptr : MsAfter(r.last_token_us, a)},
                    {"finish", MsAfter(r.finish_us, a)}};
  return j;
}

Result<std::shared_ptr<RequestLog>> RequestLog::Open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) return InvalidArgumentError("--request-log " + path + ": " + std::strerror(errno));
  return std::shared_ptr<RequestLog>(new RequestLog(f, UnixNowMicros() - SteadyClock::Read()));
}

RequestLog::~RequestLog() {
  std::lock_guard<std::mutex> lock(mu_);
  std::fclose(file_);
}

void RequestLog::Write(const RequestRecord& record) {
  const std::string line =
      RequestLogLine(record, steady_to_unix_us_).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace tandem
