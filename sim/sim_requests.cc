#include "sim/sim_requests.h"

#include <algorithm>
#include <cmath>

namespace tandem {

Result<std::vector<SimRequest>> SimRequestsFor(const loadgen::Workload& workload, const std::vector<double>& send_s,
                                               const SloConfig* classes) {
  if (send_s.size() != workload.requests.size()) {
    return InvalidArgumentError("the arrival schedule does not match the workload");
  }
  std::vector<SimRequest> out;
  out.reserve(workload.requests.size());
  for (size_t i = 0; i < workload.requests.size(); ++i) {
    const loadgen::BenchRequest& b = workload.requests[i];
    if (b.previous_turn >= 0) {
      return InvalidArgumentError("multi-turn workloads depend on the server's answers: run them with tandem bench");
    }
    SimRequest r;
    r.arrival_us = static_cast<int64_t>(std::llround(send_s[i] * 1e6));
    r.prompt_len = b.prompt_len > 0 ? b.prompt_len : static_cast<int32_t>(b.prompt_ids.size());
    r.output_len = b.output_len;
    if (r.prompt_len < 1 || r.output_len < 1) {
      return InvalidArgumentError("workload request " + std::to_string(i) +
                                  " has no prompt length or output length in tokens (a text prompt needs "
                                  "--tokenizer to be counted)");
    }
    if (classes != nullptr) {
      const SloClass* c = b.slo_class.empty() ? classes->default_class() : classes->Find(b.slo_class);
      if (c == nullptr && !b.slo_class.empty()) {
        return InvalidArgumentError("workload request " + std::to_string(i) + " names SLO class '" + b.slo_class +
                                    "', which the --slo-config does not define (" + classes->Names() + ")");
      }
      if (c != nullptr) r.slo = RequestSloOf(*c);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<loadgen::RequestResult> ResultsOf(const SimResult& sim, const std::vector<SimRequest>& requests,
                                              const loadgen::Workload& workload, double* duration_s) {
  std::vector<loadgen::RequestResult> out;
  int64_t first = requests.empty() ? 0 : requests.front().arrival_us;
  for (const SimRequest& r : requests) first = std::min(first, r.arrival_us);
  double last = 0;
  for (size_t i = 0; i < sim.records.size(); ++i) {
    const RequestRecord& rec = sim.records[i];
    loadgen::RequestResult x;
    x.index = static_cast<int64_t>(i);
    x.slo_class = i < workload.requests.size() ? workload.requests[i].slo_class : "";
    if (x.slo_class.empty()) x.slo_class = requests[i].slo.class_name;
    x.prompt_len = requests[i].prompt_len;
    x.expected_output_len = requests[i].output_len;
    x.scheduled_s = x.sent_s = (requests[i].arrival_us - first) / 1e6;
    x.done_s = (rec.finish_us - first) / 1e6;
    last = std::max(last, x.done_s);
    x.success = rec.finish_reason == FinishReason::kStop || rec.finish_reason == FinishReason::kLength;
    x.http_status = x.success ? 200 : rec.status.code() == StatusCode::kResourceExhausted ? 429 : 500;
    if (!x.success)
      x.error = rec.status.ok() ? std::string(FinishReasonName(rec.finish_reason)) : rec.status.ToString();
    if (rec.first_token_us) x.ttft_s = (rec.first_token_us - rec.arrival_us) / 1e6;
    if (x.success) x.latency_s = (rec.finish_us - rec.arrival_us) / 1e6;
    for (int64_t t : rec.token_us) x.chunk_s.push_back((t - rec.arrival_us) / 1e6);
    x.output_tokens = rec.output_tokens;
    out.push_back(std::move(x));
  }
  if (duration_s != nullptr) *duration_s = last;
  return out;
}

}  // namespace tandem
