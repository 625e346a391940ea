#include "common/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>
#include <utility>

namespace tandem {

const std::vector<double>& RequestLatencyBuckets() {
  static const std::vector<double> b = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
                                        1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0};
  return b;
}

const std::vector<double>& TokenLatencyBuckets() {
  static const std::vector<double> b = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                                        0.1,    0.15,  0.2,    0.3,   0.4,  0.5,   0.75, 1.0,   2.5,  5.0,  10.0};
  return b;
}

const std::vector<double>& ByteBuckets() {
  static const std::vector<double> b = [] {
    std::vector<double> v;
    for (double x = 4096; x <= 16.0 * (1ull << 30); x *= 4) v.push_back(x);
    return v;
  }();
  return b;
}

prometheus::MetricFamily& MetricSet::FamilyFor(std::string_view name, std::string_view help,
                                               prometheus::MetricType type) {
  for (auto& f : families_) {
    if (f.name == name) return f;
  }
  prometheus::MetricFamily f;
  f.name = std::string(name);
  f.help = std::string(help);
  f.type = type;
  families_.push_back(std::move(f));
  return families_.back();
}

namespace {
std::vector<prometheus::ClientMetric::Label> Merge(const prometheus::Labels& common, const prometheus::Labels& own) {
  prometheus::Labels all = common;
  for (const auto& [k, v] : own) all[k] = v;
  std::vector<prometheus::ClientMetric::Label> out;
  for (const auto& [k, v] : all) out.push_back({k, v});
  return out;
}
}  // namespace

void MetricSet::Gauge(std::string_view name, std::string_view help, double value, const prometheus::Labels& labels) {
  prometheus::ClientMetric m;
  m.label = Merge(common_, labels);
  m.gauge.value = value;
  FamilyFor(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(m));
}

void MetricSet::Counter(std::string_view name, std::string_view help, double value, const prometheus::Labels& labels) {
  prometheus::ClientMetric m;
  m.label = Merge(common_, labels);
  m.counter.value = value;
  FamilyFor(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(m));
}

std::string RenderMetrics(std::vector<prometheus::MetricFamily> families) {
  std::stable_sort(families.begin(), families.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

prometheus::Labels ProcessLabels(std::string_view model_name, std::string_view role, std::string_view node_id) {
  prometheus::Labels l{{"model_name", std::string(model_name)}, {"role", std::string(role)}};
  if (!node_id.empty()) l["node_id"] = std::string(node_id);
  return l;
}

}  // namespace tandem
