#include "loadgen/report.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "common/file_io.h"

namespace tandem::loadgen {

namespace {

// Python's "{s:{c}^{n}}": centred, the odd pad character on the right.
std::string Centered(const std::string& s, char fill, size_t width = 50) {
  if (s.size() >= width) return s;
  const size_t pad = width - s.size();
  return std::string(pad / 2, fill) + s + std::string(pad - pad / 2, fill);
}

void Row(std::ostream& out, const std::string& name, double value) {
  std::ostringstream v;
  v << std::fixed << std::setprecision(2) << value;
  out << std::left << std::setw(40) << name << ' ' << std::setw(10) << v.str() << "\n";
}

void Row(std::ostream& out, const std::string& name, int64_t value) {
  out << std::left << std::setw(40) << name << ' ' << std::setw(10) << value << "\n";
}

bool Selected(const RunInfo& info, const std::string& metric) {
  for (const std::string& m : info.percentile_metrics) {
    if (m == metric) return true;
  }
  return false;
}

struct MetricRow {
  const char* key;
  const char* name;
  const char* header;
  const MetricStats& stats;
};

std::vector<MetricRow> MetricRows(const Summary& s) {
  return {{"ttft", "TTFT", "Time to First Token", s.ttft},
          {"tpot", "TPOT", "Time per Output Token (excl. 1st token)", s.tpot},
          {"itl", "ITL", "Inter-token Latency", s.itl},
          {"e2el", "E2EL", "End-to-end Latency", s.e2el}};
}

std::string Date() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return buf;
}

nlohmann::json AttainmentJson(const Attainment& a) {
  return {{"requests", a.requests}, {"met", a.met},   {"slo_attainment", a.joint},   {"ttft", a.ttft},
          {"tpot", a.tpot},         {"e2el", a.e2el}, {"request_goodput", a.goodput}};
}

}  // namespace

std::string PercentileWord(double p) {
  if (std::floor(p) == p) return std::to_string(static_cast<int64_t>(p));
  std::ostringstream out;
  out << std::setprecision(15) << p;
  return out.str();
}

void PrintTable(std::ostream& out, const RunInfo& info, const Summary& s) {
  out << Centered(" Serving Benchmark Result ", '=') << "\n";
  Row(out, "Successful requests:", s.completed);
  Row(out, "Failed requests:", s.failed);
  if (info.max_concurrency > 0) Row(out, "Maximum request concurrency:", info.max_concurrency);
  if (info.request_rate > 0 && !std::isinf(info.request_rate))
    Row(out, "Request rate configured (RPS):", info.request_rate);
  Row(out, "Benchmark duration (s):", s.duration_s);
  Row(out, "Total input tokens:", s.total_input);
  Row(out, "Total generated tokens:", s.total_output);
  if (s.total_cached > 0)
    Row(out, "Prefix cache hit rate (%):", 100.0 * s.total_cached / std::max<int64_t>(1, s.total_input));
  Row(out, "Request throughput (req/s):", s.request_throughput);
  if (s.request_goodput) Row(out, "Request goodput (req/s):", *s.request_goodput);
  Row(out, "Output token throughput (tok/s):", s.output_throughput);
  Row(out, "Peak output token throughput (tok/s):", s.max_output_tokens_per_s);
  Row(out, "Peak concurrent requests:", static_cast<double>(s.max_concurrent_requests));
  Row(out, "Total Token throughput (tok/s):", s.total_token_throughput);
  for (const MetricRow& m : MetricRows(s)) {
    if (!Selected(info, m.key)) continue;
    out << Centered(m.header, '-') << "\n";
    Row(out, std::string("Mean ") + m.name + " (ms):", m.stats.mean_ms);
    Row(out, std::string("Median ") + m.name + " (ms):", m.stats.median_ms);
    for (const auto& [p, v] : m.stats.percentiles_ms) Row(out, "P" + PercentileWord(p) + " " + m.name + " (ms):", v);
  }
  // Tandem's additions, after vLLM's sections so that a reader of vLLM's table finds its rows.
  if (s.attainment) {
    const Attainment& a = *s.attainment;
    out << Centered("SLO Attainment (DistServe; failed = miss)", '-') << "\n";
    Row(out, "Requests meeting every target (%):", 100 * a.joint);
    Row(out, "Meeting TTFT (%):", 100 * a.ttft);
    Row(out, "Meeting TPOT (%):", 100 * a.tpot);
    Row(out, "Meeting E2EL (%):", 100 * a.e2el);
    if (info.resources > 0) Row(out, "Goodput per resource (req/s):", a.goodput / info.resources);
    for (const auto& [name, c] : s.by_class) Row(out, "Class " + name + " (%):", 100 * c.joint);
  }
  out << Centered("Client", '-') << "\n";
  Row(out, "Max requests in flight:", s.max_in_flight);
  for (const auto& [p, v] : s.send_lag.percentiles_ms) {
    Row(out, (p == 100 ? std::string("Send lag max") : "Send lag P" + PercentileWord(p)) + " (ms):", v);
  }
  for (const auto& [why, n] : s.errors) out << "failed " << n << "x: " << why << "\n";
  out << std::string(50, '=') << "\n";
}

nlohmann::ordered_json ResultJson(const RunInfo& info, const Summary& s, const std::vector<RequestResult>& results,
                                  bool include_texts) {
  nlohmann::ordered_json j;
  j["date"] = Date();
  j["backend"] = info.backend;
  j["label"] = info.label;
  j["base_url"] = info.base_url;
  j["endpoint"] = info.endpoint;
  j["model_id"] = info.model_id;
  j["tokenizer_id"] = info.tokenizer_id;
  j["dataset_name"] = info.dataset_name;
  j["num_prompts"] = info.num_prompts;
  if (info.request_rate > 0 && !std::isinf(info.request_rate)) {
    j["request_rate"] = info.request_rate;
  } else {
    j["request_rate"] = "inf";
  }
  j["burstiness"] = info.burstiness;
  j["max_concurrency"] = info.max_concurrency > 0 ? nlohmann::ordered_json(info.max_concurrency) : nullptr;
  j["goodput"] = info.goodput;
  j["percentile_metrics"] = info.percentile_metrics;
  j["metric_percentiles"] = info.metric_percentiles;
  j["duration"] = s.duration_s;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["total_input_tokens"] = s.total_input;
  j["total_output_tokens"] = s.total_output;
  j["total_cached_tokens"] = s.total_cached;
  j["request_throughput"] = s.request_throughput;
  j["request_goodput"] = s.request_goodput ? nlohmann::ordered_json(*s.request_goodput) : nullptr;
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  j["max_output_tokens_per_s"] = s.max_output_tokens_per_s;
  j["max_concurrent_requests"] = s.max_concurrent_requests;
  for (const MetricRow& m : MetricRows(s)) {
    if (!Selected(info, m.key)) continue;
    const std::string k = m.key;
    j["mean_" + k + "_ms"] = m.stats.mean_ms;
    j["median_" + k + "_ms"] = m.stats.median_ms;
    j["std_" + k + "_ms"] = m.stats.std_ms;
    for (const auto& [p, v] : m.stats.percentiles_ms) j["p" + PercentileWord(p) + "_" + k + "_ms"] = v;
  }
  // vLLM's per-request lists, in request order (a failed request has ttft 0 and no gaps).
  nlohmann::ordered_json input_lens = nlohmann::ordered_json::array(), output_lens = input_lens, ttfts = input_lens,
                         itls = input_lens, errors = input_lens, texts = input_lens;
  for (const RequestResult& r : results) {
    input_lens.push_back(r.prompt_len);
    output_lens.push_back(r.success ? r.output_tokens : 0);
    ttfts.push_back(r.ttft_s >= 0 ? r.ttft_s : 0.0);
    nlohmann::ordered_json gaps = nlohmann::ordered_json::array();
    for (size_t i = 1; i < r.chunk_s.size(); ++i) gaps.push_back(r.chunk_s[i] - r.chunk_s[i - 1]);
    itls.push_back(std::move(gaps));
    errors.push_back(r.error);
    if (include_texts) texts.push_back(r.generated_text);
  }
  j["input_lens"] = std::move(input_lens);
  j["output_lens"] = std::move(output_lens);
  j["ttfts"] = std::move(ttfts);
  j["itls"] = std::move(itls);
  if (include_texts) j["generated_texts"] = std::move(texts);
  j["errors"] = std::move(errors);

  // Tandem's additions.
  if (s.attainment) {
    j["slo_attainment"] = s.attainment->joint;
    j["slo_attainment_ttft"] = s.attainment->ttft;
    j["slo_attainment_tpot"] = s.attainment->tpot;
    j["slo_attainment_e2el"] = s.attainment->e2el;
    nlohmann::ordered_json by_class = nlohmann::ordered_json::object();
    for (const auto& [name, a] : s.by_class) by_class[name] = AttainmentJson(a);
    j["attainment_by_class"] = std::move(by_class);
  } else {
    j["slo_attainment"] = nullptr;
  }
  if (info.resources > 0) {
    j["resources"] = info.resources;
    j["request_goodput_per_resource"] =
        s.request_goodput ? nlohmann::ordered_json(*s.request_goodput / info.resources) : nullptr;
    j["request_throughput_per_resource"] = s.request_throughput / info.resources;
  }
  j["max_in_flight"] = s.max_in_flight;
  j["median_send_lag_ms"] = s.send_lag.median_ms;
  for (const auto& [p, v] : s.send_lag.percentiles_ms) j["p" + PercentileWord(p) + "_send_lag_ms"] = v;
  nlohmann::ordered_json records = nlohmann::ordered_json::array();
  for (const RequestResult& r : results) {
    nlohmann::ordered_json rec;
    rec["index"] = r.index;
    rec["slo_class"] = r.slo_class;
    rec["scheduled_s"] = r.scheduled_s;
    rec["sent_s"] = r.sent_s;
    rec["first_token_s"] = r.ttft_s >= 0 ? nlohmann::ordered_json(r.sent_s + r.ttft_s) : nullptr;
    nlohmann::ordered_json times = nlohmann::ordered_json::array();
    for (double c : r.chunk_s) times.push_back(r.sent_s + c);
    rec["token_times_s"] = std::move(times);
    rec["done_s"] = r.done_s;
    rec["latency_s"] = r.latency_s >= 0 ? nlohmann::ordered_json(r.latency_s) : nullptr;
    rec["prompt_tokens"] = r.prompt_len;
    rec["output_tokens"] = r.output_tokens;
    rec["cached_tokens"] = r.cached_tokens;
    rec["turn"] = r.turn;
    rec["expected_output_tokens"] = r.expected_output_len;
    rec["http_status"] = r.http_status;
    rec["success"] = r.success;
    rec["error"] = r.error;
    records.push_back(std::move(rec));
  }
  j["requests"] = std::move(records);
  return j;
}

void WriteCsv(std::ostream& out, const std::vector<RequestResult>& results) {
  out << "index,slo_class,scheduled_s,sent_s,ttft_ms,tpot_ms,e2el_ms,prompt_tokens,output_tokens,"
         "expected_output_tokens,http_status,success,error\n";
  out << std::setprecision(9);
  for (const RequestResult& r : results) {
    std::string error = r.error;
    for (char& c : error) {
      if (c == '"' || c == '\n' || c == '\r') c = '\'';
    }
    out << r.index << ',' << r.slo_class << ',' << r.scheduled_s << ',' << r.sent_s << ','
        << (r.ttft_s >= 0 ? std::to_string(r.ttft_s * 1000) : "") << ','
        << (r.success && r.output_tokens > 1 ? std::to_string(r.tpot_s() * 1000) : "") << ','
        << (r.latency_s >= 0 ? std::to_string(r.latency_s * 1000) : "") << ',' << r.prompt_len << ',' << r.output_tokens
        << ',' << r.expected_output_len << ',' << r.http_status << ',' << (r.success ? 1 : 0) << ",\"" << error
        << "\"\n";
  }
}

Result<nlohmann::json> ReadResultFile(const std::string& path) {
  auto text = ReadTextFile(path);
  if (!text.ok()) return text.status().WithContext("result");
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError("result " + path + ": not a JSON object");
  return j;
}

}  // namespace tandem::loadgen
