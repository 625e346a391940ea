// What a benchmark writes: the table on stdout in `vllm bench serve`'s section order, the result
// JSON with vLLM's keys (so scripts that read vLLM results read ours) plus Tandem's attainment
// and every per-request record, and the same records as CSV.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "loadgen/metrics.h"

namespace tandem::loadgen {

// How the run was set up: echoed in the table and the JSON.
struct RunInfo {
  std::string label;  // free text (e.g. "1P+1D"); the plot's curve name
  std::string backend = "openai";
  std::string base_url;  // http://host:port
  std::string endpoint;  // /v1/completions
  std::string model_id, tokenizer_id, dataset_name;
  int64_t num_prompts = 0;
  double request_rate = 0;  // <= 0 or inf: all at once
  double burstiness = 1;
  int64_t max_concurrency = 0;
  double resources = 0;              // > 0: cores or GPUs behind the endpoint
  std::vector<std::string> goodput;  // the --goodput pairs as given
  std::vector<std::string> percentile_metrics = {"ttft", "tpot", "itl"};
  std::vector<double> metric_percentiles = {99};
};

// vLLM's p-key spelling: 99 -> "99", 99.9 -> "99.9".
std::string PercentileWord(double p);

void PrintTable(std::ostream& out, const RunInfo& info, const Summary& s);

// The result: vLLM's `--save-result` keys (date, backend, model_id, num_prompts, request_rate,
// duration, completed, request_throughput, request_goodput, output_throughput,
// mean_/median_/std_/pNN_<metric>_ms, input_lens, output_lens, ttfts, itls, errors, ...), then
// Tandem's: slo_attainment (joint and per target), attainment_by_class, max_in_flight, the
// client's send lag, and "requests" (one record per request, times in seconds from the start).
nlohmann::ordered_json ResultJson(const RunInfo& info, const Summary& s, const std::vector<RequestResult>& results,
                                  bool include_texts);

// The per-request records as CSV, one row per request.
void WriteCsv(std::ostream& out, const std::vector<RequestResult>& results);

// A result file (single run or sweep) parsed: NotFound / InvalidArgument naming the path when it
// cannot be read or is not a JSON object.
Result<nlohmann::json> ReadResultFile(const std::string& path);

}  // namespace tandem::loadgen
