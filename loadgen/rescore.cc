#include "loadgen/rescore.h"

#include <cmath>

#include "common/file_io.h"

namespace tandem::loadgen {

namespace {

double Num(const nlohmann::json& j, const char* key, double fallback) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

std::string Str(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

}  // namespace

Result<SavedRun> ReadSavedRun(const nlohmann::json& j, const std::string& name) {
  if (!j.is_object()) return InvalidArgumentError(name + ": not a tandem bench result");
  if (j.contains("sweep")) return InvalidArgumentError(name + ": a sweep; rescore takes single-run results");
  if (!j.contains("requests") || !j["requests"].is_array()) {
    return InvalidArgumentError(name + ": no per-request records (\"requests\"); was it written by tandem bench?");
  }
  SavedRun run;
  run.info.label = Str(j, "label");
  run.info.base_url = Str(j, "base_url");
  run.info.endpoint = Str(j, "endpoint");
  run.info.model_id = Str(j, "model_id");
  run.info.tokenizer_id = Str(j, "tokenizer_id");
  run.info.dataset_name = Str(j, "dataset_name");
  run.info.num_prompts = static_cast<int64_t>(Num(j, "num_prompts", 0));
  run.info.request_rate = Num(j, "request_rate", INFINITY);
  run.info.burstiness = Num(j, "burstiness", 1);
  run.info.max_concurrency = static_cast<int64_t>(Num(j, "max_concurrency", 0));
  run.info.resources = Num(j, "resources", 0);
  run.duration_s = Num(j, "duration", 0);
  // The metrics and percentiles the run reported, so the rescored result reports the same.
  if (j.contains("percentile_metrics") && j["percentile_metrics"].is_array()) {
    run.info.percentile_metrics.clear();
    for (const nlohmann::json& m : j["percentile_metrics"]) {
      if (m.is_string()) run.info.percentile_metrics.push_back(m.get<std::string>());
    }
  }
  if (j.contains("metric_percentiles") && j["metric_percentiles"].is_array()) {
    run.info.metric_percentiles.clear();
    for (const nlohmann::json& p : j["metric_percentiles"]) {
      if (p.is_number()) run.info.metric_percentiles.push_back(p.get<double>());
    }
  }
  for (const nlohmann::json& rec : j["requests"]) {
    if (!rec.is_object()) return InvalidArgumentError(name + ": a request record that is not an object");
    RequestResult r;
    r.index = static_cast<int64_t>(Num(rec, "index", 0));
    r.slo_class = Str(rec, "slo_class");
    r.scheduled_s = Num(rec, "scheduled_s", 0);
    r.sent_s = Num(rec, "sent_s", 0);
    r.done_s = Num(rec, "done_s", -1);
    r.prompt_len = static_cast<int32_t>(Num(rec, "prompt_tokens", 0));
    r.output_tokens = static_cast<int32_t>(Num(rec, "output_tokens", 0));
    r.expected_output_len = static_cast<int32_t>(Num(rec, "expected_output_tokens", 0));
    r.http_status = static_cast<int>(Num(rec, "http_status", 0));
    r.success = rec.value("success", false);
    r.error = Str(rec, "error");
    const double first = Num(rec, "first_token_s", NAN);
    r.ttft_s = std::isfinite(first) ? first - r.sent_s : -1;
    r.latency_s = Num(rec, "latency_s", -1);
    if (rec.contains("token_times_s") && rec["token_times_s"].is_array()) {
      for (const nlohmann::json& t : rec["token_times_s"]) {
        if (t.is_number()) r.chunk_s.push_back(t.get<double>() - r.sent_s);
      }
    }
    run.results.push_back(std::move(r));
  }
  return run;
}

Result<Summary> RescoreFile(const std::string& in_path, const SloPolicy& slo, const std::vector<std::string>& goodput,
                            const std::string& label, const std::string& out_path) {
  auto j = ReadResultFile(in_path);
  if (!j.ok()) return j.status();
  auto run = ReadSavedRun(*j, in_path);
  if (!run.ok()) return run.status();
  run->info.goodput = goodput;
  if (!label.empty()) run->info.label = label;
  const Summary s = Summarize(run->results, run->duration_s, run->info.metric_percentiles, slo);
  if (auto st = WriteTextFile(out_path, ResultJson(run->info, s, run->results, false).dump(2) + "\n"); !st.ok()) {
    return st;
  }
  return s;
}

}  // namespace tandem::loadgen
