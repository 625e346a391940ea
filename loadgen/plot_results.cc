#include "loadgen/plot_results.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "loadgen/report.h"

namespace tandem::loadgen {

namespace {

double Num(const nlohmann::json& j, const char* key, double fallback = NAN) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

// The run whose details a sweep is drawn with: the goodput point, or its highest rate.
const nlohmann::json* RepresentativeRun(const nlohmann::json& result) {
  if (!result.contains("runs")) return &result;
  const nlohmann::json& runs = result["runs"];
  if (!runs.is_array() || runs.empty()) return nullptr;
  const double best = Num(result, "goodput_rate", 0);
  const nlohmann::json* chosen = &runs.back();
  for (const nlohmann::json& r : runs) {
    if (best > 0 && Num(r, "request_rate") == best) chosen = &r;
  }
  return chosen;
}

std::vector<std::pair<double, double>> Cdf(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  std::vector<std::pair<double, double>> points;
  for (size_t i = 0; i < values.size(); ++i) {
    points.emplace_back(values[i], static_cast<double>(i + 1) / static_cast<double>(values.size()));
  }
  return points;
}

std::string RateText(double rate) {
  if (!(rate > 0) || std::isinf(rate)) return "all at once";
  std::ostringstream out;
  out.precision(3);
  out << rate << " req/s";
  return out.str();
}

// The TTFT and TPOT CDFs, requests in flight and chunks per second of one run, coloured as its
// label's attainment curve.
void AddDetailCurves(const nlohmann::json& run, const std::string& label, Panel* ttft, Panel* tpot, Panel* flight,
                     Panel* chunks) {
  const std::string curve = label + " @ " + RateText(Num(run, "request_rate"));
  std::vector<double> ttfts, tpots;
  std::vector<std::pair<double, int>> edges;
  std::map<int64_t, double> per_second;
  for (const nlohmann::json& r : run["requests"]) {
    const double sent = Num(r, "sent_s"), first = Num(r, "first_token_s"), latency = Num(r, "latency_s");
    const double done = Num(r, "done_s");
    const double out_tokens = Num(r, "output_tokens", 0);
    if (std::isfinite(sent) && std::isfinite(done) && done >= sent) {
      edges.emplace_back(sent, +1);
      edges.emplace_back(done, -1);
    }
    if (r.contains("token_times_s") && r["token_times_s"].is_array()) {
      for (const nlohmann::json& t : r["token_times_s"]) {
        if (t.is_number()) per_second[static_cast<int64_t>(std::floor(t.get<double>()))] += 1;
      }
    }
    if (!r.value("success", false) || !std::isfinite(first)) continue;
    ttfts.push_back(1000 * (first - sent));
    if (out_tokens > 1 && std::isfinite(latency)) tpots.push_back(1000 * (latency - (first - sent)) / (out_tokens - 1));
  }
  ttft->curves.push_back({curve, Cdf(ttfts), false, true, label});
  tpot->curves.push_back({curve, Cdf(tpots), false, true, label});
  std::sort(edges.begin(), edges.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first < b.first : a.second < b.second; });
  Curve in_flight{curve, {{0, 0}}, false, true, label};
  int n = 0;
  for (const auto& [t, d] : edges) {
    n += d;
    in_flight.points.emplace_back(t, n);
  }
  flight->curves.push_back(std::move(in_flight));
  Curve rate_curve{curve, {}, false, true, label};
  if (!per_second.empty()) {
    for (int64_t sec = per_second.begin()->first; sec <= per_second.rbegin()->first; ++sec) {
      auto it = per_second.find(sec);
      rate_curve.points.emplace_back(static_cast<double>(sec), it == per_second.end() ? 0.0 : it->second);
    }
  }
  chunks->curves.push_back(std::move(rate_curve));
}

}  // namespace

Result<std::vector<Panel>> PanelsFromResults(const std::vector<nlohmann::json>& results,
                                             const std::vector<std::string>& names, double goal) {
  Panel attainment{
      "SLO attainment vs request rate", "request rate (req/s)", "attainment (%)", {}, 100 * goal, 0.0, 100.0, false};
  const std::string each = " (per setup: highest rate meeting the goal, else lowest)";
  Panel ttft{"TTFT CDF" + each, "TTFT (ms)", "fraction of requests", {}, std::nullopt, 0.0, 1.0, false};
  Panel tpot{"TPOT CDF" + each, "TPOT (ms)", "fraction of requests", {}, std::nullopt, 0.0, 1.0, false};
  Panel flight{"Requests in flight", "time (s)", "requests", {}, std::nullopt, std::nullopt, std::nullopt, false};
  Panel chunks{
      "Streamed chunks per second", "time (s)", "chunks/s", {}, std::nullopt, std::nullopt, std::nullopt, false};
  std::map<std::string, std::vector<std::pair<double, double>>> by_label;
  std::vector<std::string> label_order;
  // Per label, the run the detail panels show: the highest rate still meeting the goal, or the
  // lowest rate when none does (one run per label keeps a stack of runs readable).
  struct Detail {
    const nlohmann::json* run = nullptr;
    double rate = 0;
    bool met = false;
  };
  std::map<std::string, Detail> detail;
  for (size_t i = 0; i < results.size(); ++i) {
    const nlohmann::json& res = results[i];
    if (!res.is_object()) return InvalidArgumentError(names[i] + ": not a tandem bench result");
    std::string label = res.contains("label") && res["label"].is_string() ? res["label"].get<std::string>() : "";
    if (label.empty()) label = names[i];
    if (!by_label.count(label)) label_order.push_back(label);
    auto& points = by_label[label];
    if (res.contains("points") && res["points"].is_array() && res.value("sweep", "") == "rate") {
      for (const nlohmann::json& p : res["points"]) {
        const double rate = Num(p, "request_rate"), a = Num(p, "slo_attainment");
        if (std::isfinite(rate) && std::isfinite(a)) points.emplace_back(rate, 100 * a);
      }
    } else if (!res.contains("runs")) {
      const double rate = Num(res, "request_rate"), a = Num(res, "slo_attainment");
      if (std::isfinite(rate) && std::isfinite(a)) points.emplace_back(rate, 100 * a);
    }
    const nlohmann::json* run = RepresentativeRun(res);
    if (run == nullptr || !run->contains("requests") || !(*run)["requests"].is_array()) continue;
    double rate = Num(*run, "request_rate");
    if (!std::isfinite(rate)) rate = 0;
    const double a = Num(*run, "slo_attainment");
    const bool met = std::isfinite(a) && a >= goal;
    Detail& d = detail[label];
    if (d.run == nullptr || (met && (!d.met || rate > d.rate)) || (!met && !d.met && rate < d.rate)) {
      d = Detail{run, rate, met};
    }
  }
  for (const std::string& label : label_order) {
    auto points = by_label[label];
    std::sort(points.begin(), points.end());
    if (!points.empty()) attainment.curves.push_back({label, std::move(points), true, false, label});
    auto it = detail.find(label);
    if (it != detail.end()) AddDetailCurves(*it->second.run, label, &ttft, &tpot, &flight, &chunks);
  }
  return std::vector<Panel>{attainment, ttft, tpot, flight, chunks};
}

Status PlotResultFiles(const std::vector<std::string>& paths, const std::string& out_path, double goal) {
  std::vector<nlohmann::json> results;
  std::vector<std::string> names;
  for (const std::string& path : paths) {
    auto j = ReadResultFile(path);
    if (!j.ok()) return j.status();
    results.push_back(std::move(*j));
    names.push_back(std::filesystem::path(path).stem().string());
  }
  auto panels = PanelsFromResults(results, names, goal);
  if (!panels.ok()) return panels.status();
  return RenderPanels(*panels, out_path);
}

}  // namespace tandem::loadgen
