// `--request-log FILE`: one JSON line per finished request, from its RequestRecord. The line is
// also a trace line `tandem bench --dataset-name trace` replays (Mooncake's fields first:
// "timestamp" in Unix milliseconds at arrival, "input_length", "output_length", plus
// "slo_class"), so production traffic can be benchmarked and simulated as it came:
//   {"timestamp", "input_length", "output_length", "slo_class", "request_id", "finish_reason",
//    "error", "max_tokens", "output_tokens", "prefill_node", "decode_node", "decode_attempts",
//    "ttft_ms", "tpot_ms", "e2e_ms", "queue_ms", "slo_ttft_ms", "slo_tpot_ms", "ttft_met",
//    "tpot_met", "slo_met", "kv_bytes", "stamps_ms": {phase: ms after arrival or null}}
// output_length is what a replay should ask for: the tokens it produced when it finished
// normally (an EOS stop included), else the max_tokens it asked for.
// Thread-safe: Write may be called from any thread; each line is written and flushed whole.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "slo/request_record.h"

namespace tandem {

// The record as one log line's JSON. `steady_to_unix_us` converts the record's steady-clock
// stamps to Unix time (UnixNowMicros() - SteadyClock::Read(), taken once).
nlohmann::ordered_json RequestLogLine(const RequestRecord& record, int64_t steady_to_unix_us);

class RequestLog {
 public:
  // Opens `path` for appending; InvalidArgument naming it when it cannot be.
  static Result<std::shared_ptr<RequestLog>> Open(const std::string& path);
  ~RequestLog();
  RequestLog(const RequestLog&) = delete;
  RequestLog& operator=(const RequestLog&) = delete;

  void Write(const RequestRecord& record);

 private:
  RequestLog(std::FILE* file, int64_t steady_to_unix_us) : file_(file), steady_to_unix_us_(steady_to_unix_us) {}

  std::mutex mu_;
  std::FILE* file_;  // GUARDED_BY(mu_)
  const int64_t steady_to_unix_us_;
};

}  // namespace tandem
