// Request traces with timestamps, in the two layouts public LLM serving traces use:
//   JSONL, one request per line: {"timestamp": ms, "input_length": n, "output_length": m} with
//     optional "hash_ids" (Mooncake's prefix blocks) and "slo_class";
//   CSV with a header naming TIMESTAMP, ContextTokens and GeneratedTokens (the Azure LLM
//     inference traces); TIMESTAMP is either a number of milliseconds or a date-time
//     "YYYY-MM-DD HH:MM:SS[.fraction]".
// The format is told by the first non-blank character: '{' JSONL, anything else CSV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem::loadgen {

struct TraceRow {
  double timestamp_ms = 0;
  int32_t input_length = 0;
  int32_t output_length = 0;
  std::vector<int64_t> hash_ids;
  std::string slo_class;
};

// InvalidArgument naming the file, the line and the field; NotFound for a missing file; an empty
// trace is an error.
Result<std::vector<TraceRow>> ReadTraceFile(const std::string& path);

// "2023-11-16 18:15:46.6805900" -> milliseconds since 1970 (UTC); InvalidArgument otherwise.
Result<double> ParseDateTimeMs(const std::string& text);

}  // namespace tandem::loadgen
