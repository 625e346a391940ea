#include "loadgen/metrics.h"

#include <algorithm>
#include <cmath>

#include "slo/slo_config.h"

namespace tandem::loadgen {

double RequestResult::tpot_s() const {
  if (output_tokens <= 1 || latency_s < 0 || ttft_s < 0) return 0;
  return (latency_s - ttft_s) / (output_tokens - 1);
}

Result<SloTargets> SloTargets::Parse(const std::vector<std::string>& pairs) {
  SloTargets t;
  for (const std::string& pair : pairs) {
    const size_t colon = pair.find(':');
    const std::string bad = "--goodput '" + pair + "': expected KEY:MILLISECONDS with KEY ttft, tpot or e2el";
    if (colon == std::string::npos) return InvalidArgumentError(bad);
    const std::string key = pair.substr(0, colon);
    double value = 0;
    try {
      size_t used = 0;
      value = std::stod(pair.substr(colon + 1), &used);
      if (used != pair.size() - colon - 1) return InvalidArgumentError(bad);
    } catch (const std::exception&) {
      return InvalidArgumentError(bad);
    }
    if (!(value >= 0) || std::isinf(value)) return InvalidArgumentError(bad + " (a non-negative number)");
    if (key == "ttft") {
      t.ttft_ms = value;
    } else if (key == "tpot") {
      t.tpot_ms = value;
    } else if (key == "e2el") {
      t.e2el_ms = value;
    } else {
      return InvalidArgumentError(bad);
    }
  }
  return t;
}

SloTargets SloTargets::Scaled(double factor) const {
  SloTargets t = *this;
  for (std::optional<double>* v : {&t.ttft_ms, &t.tpot_ms, &t.e2el_ms}) {
    if (*v) **v *= factor;
  }
  return t;
}

const SloTargets& SloPolicy::For(const std::string& slo_class) const {
  if (!slo_class.empty()) {
    auto it = classes.find(slo_class);
    if (it != classes.end()) return it->second;
  }
  return fallback;
}

bool SloPolicy::empty() const {
  if (!fallback.empty()) return false;
  return std::all_of(classes.begin(), classes.end(), [](const auto& c) { return c.second.empty(); });
}

Result<SloPolicy> SloPolicy::FromConfigFile(const std::string& path, SloTargets fallback) {
  auto config = SloConfig::FromFile(path);
  if (!config.ok()) return config.status();
  SloPolicy policy;
  policy.fallback = fallback;
  for (const SloClass& c : config->classes()) {
    SloTargets t;
    if (c.ttft_ms > 0) t.ttft_ms = c.ttft_ms;
    if (c.tpot_ms > 0) t.tpot_ms = c.tpot_ms;
    policy.classes[c.name] = t;
  }
  // A request without a class is held to the file's default class, as the router holds it,
  // unless --goodput gave targets for it.
  if (policy.fallback.empty() && config->default_class()) policy.fallback = policy.classes[config->default_class()->name];
  return policy;
}

SloCheck CheckSlo(const RequestResult& r, const SloTargets& t) {
  SloCheck c;
  if (!r.success) return SloCheck{false, false, false};
  if (t.ttft_ms) c.ttft = r.ttft_s >= 0 && r.ttft_s * 1000 <= *t.ttft_ms;
  if (t.tpot_ms) c.tpot = r.tpot_s() * 1000 <= *t.tpot_ms;
  if (t.e2el_ms) c.e2el = r.latency_s >= 0 && r.latency_s * 1000 <= *t.e2el_ms;
  return c;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(sorted.size() - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

MetricStats Stats(std::vector<double> v, const std::vector<double>& percentiles) {
  MetricStats s;
  std::sort(v.begin(), v.end());
  if (!v.empty()) {
    double sum = 0;
    for (double x : v) sum += x;
    const double mean = sum / static_cast<double>(v.size());
    double sq = 0;
    for (double x : v) sq += (x - mean) * (x - mean);
    s.mean_ms = mean * 1000;
    s.std_ms = std::sqrt(sq / static_cast<double>(v.size())) * 1000;
    s.median_ms = Percentile(v, 50) * 1000;
  }
  for (double p : percentiles) s.percentiles_ms.emplace_back(p, Percentile(v, p) * 1000);
  return s;
}

namespace {

void Count(Attainment& a, const SloCheck& c) {
  ++a.requests;
  a.met += c.all();
  a.ttft += c.ttft;
  a.tpot += c.tpot;
  a.e2el += c.e2el;
}

void Finish(Attainment& a, double duration_s) {
  if (a.requests == 0) return;
  const double n = static_cast<double>(a.requests);
  a.joint = static_cast<double>(a.met) / n;
  a.ttft /= n;
  a.tpot /= n;
  a.e2el /= n;
  a.goodput = duration_s > 0 ? static_cast<double>(a.met) / duration_s : 0;
}

}  // namespace

Summary Summarize(const std::vector<RequestResult>& results, double duration_s, const std::vector<double>& percentiles,
                  const SloPolicy& slo) {
  Summary s;
  s.duration_s = duration_s;
  std::vector<double> ttfts, tpots, itls, e2els, lags;
  const bool targets = !slo.empty();
  Attainment all;
  for (const RequestResult& r : results) {
    lags.push_back(std::max(0.0, r.sent_s - r.scheduled_s));
    if (targets) {
      const SloCheck c = CheckSlo(r, slo.For(r.slo_class));
      Count(all, c);
      if (!r.slo_class.empty()) Count(s.by_class[r.slo_class], c);
    }
    if (!r.success) {
      ++s.failed;
      ++s.errors[r.error.empty() ? "unknown error" : r.error.substr(0, 120)];
      continue;
    }
    ++s.completed;
    s.total_input += r.prompt_len;
    s.total_cached += r.cached_tokens;
    s.total_output += r.output_tokens;
    if (r.output_tokens > 1) tpots.push_back(r.tpot_s());
    for (size_t i = 1; i < r.chunk_s.size(); ++i) itls.push_back(r.chunk_s[i] - r.chunk_s[i - 1]);
    if (r.ttft_s >= 0) ttfts.push_back(r.ttft_s);
    e2els.push_back(r.latency_s);
  }
  if (duration_s > 0) {
    s.request_throughput = static_cast<double>(s.completed) / duration_s;
    s.output_throughput = static_cast<double>(s.total_output) / duration_s;
    s.total_token_throughput = static_cast<double>(s.total_input + s.total_output) / duration_s;
  }
  s.ttft = Stats(ttfts, percentiles);
  s.tpot = Stats(tpots, percentiles);
  s.itl = Stats(itls, percentiles);
  s.e2el = Stats(e2els, percentiles);
  s.send_lag = Stats(lags, {50, 99, 100});
  if (targets) {
    Finish(all, duration_s);
    s.request_goodput = all.goodput;
    s.attainment = all;
    for (auto& [name, a] : s.by_class) Finish(a, duration_s);
  }

  // vLLM's one-second buckets over the successful requests' span: output tokens (at each
  // chunk's arrival) and requests active in each second.
  double first = 0, last = 0;
  bool any = false;
  for (const RequestResult& r : results) {
    if (!r.success) continue;
    first = any ? std::min(first, r.sent_s) : r.sent_s;
    last = any ? std::max(last, r.sent_s + r.latency_s) : r.sent_s + r.latency_s;
    any = true;
  }
  if (any) {
    const size_t buckets = static_cast<size_t>(std::ceil(last - first)) + 1;
    std::vector<double> tokens(buckets, 0);
    std::vector<int64_t> active(buckets, 0);
    for (const RequestResult& r : results) {
      if (!r.success) continue;
      for (double c : r.chunk_s) {
        const auto b = static_cast<int64_t>(r.sent_s + c - first);
        if (b >= 0 && static_cast<size_t>(b) < buckets) tokens[static_cast<size_t>(b)] += 1;
      }
      const auto from = static_cast<size_t>(r.sent_s - first);
      const auto to = std::min(buckets - 1, static_cast<size_t>(r.sent_s + r.latency_s - first));
      for (size_t b = from; b <= to; ++b) ++active[b];
    }
    s.max_output_tokens_per_s = *std::max_element(tokens.begin(), tokens.end());
    s.max_concurrent_requests = *std::max_element(active.begin(), active.end());
  }
  // The exact peak of requests in flight (sent, not yet answered), over every request.
  std::vector<std::pair<double, int>> edges;
  for (const RequestResult& r : results) {
    edges.emplace_back(r.sent_s, +1);
    const double end = r.done_s >= 0 ? r.done_s : (r.latency_s >= 0 ? r.sent_s + r.latency_s : duration_s);
    edges.emplace_back(std::max(end, r.sent_s), -1);
  }
  std::sort(edges.begin(), edges.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second < b.second;  // an end before a start
  });
  int64_t in_flight = 0;
  for (const auto& [t, d] : edges) {
    in_flight += d;
    s.max_in_flight = std::max(s.max_in_flight, in_flight);
  }
  return s;
}

}  // namespace tandem::loadgen
