#include "loadgen/arrivals.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace tandem::loadgen {

namespace {

double RateAt(const ArrivalOptions& o, int64_t index, int64_t total) {
  if (o.ramp_up == RampUp::kNone) return o.rate;
  const double progress = static_cast<double>(index) / static_cast<double>(std::max<int64_t>(total - 1, 1));
  if (o.ramp_up == RampUp::kLinear) return o.ramp_up_start_rps + (o.ramp_up_end_rps - o.ramp_up_start_rps) * progress;
  return o.ramp_up_start_rps * std::pow(o.ramp_up_end_rps / o.ramp_up_start_rps, progress);
}

}  // namespace

Result<RampUp> ParseRampUp(const std::string& name) {
  if (name == "linear") return RampUp::kLinear;
  if (name == "exponential") return RampUp::kExponential;
  return InvalidArgumentError("--ramp-up-strategy '" + name + "': expected linear or exponential");
}

Result<std::vector<double>> ArrivalSchedule(int64_t num_requests, const ArrivalOptions& o) {
  if (num_requests < 0) return InvalidArgumentError("a negative number of requests");
  if (!(o.burstiness > 0)) return InvalidArgumentError("--burstiness must be positive");
  if (o.ramp_up != RampUp::kNone && !(o.ramp_up_start_rps > 0 && o.ramp_up_end_rps > 0)) {
    return InvalidArgumentError("a ramp-up needs positive --ramp-up-start-rps and --ramp-up-end-rps");
  }
  std::vector<double> at(static_cast<size_t>(num_requests), 0.0);
  const bool all_at_once = o.ramp_up == RampUp::kNone && (!(o.rate > 0) || std::isinf(o.rate));
  if (all_at_once || num_requests == 0) return at;
  std::mt19937_64 rng(o.seed);
  double t = 0;
  for (int64_t i = 0; i < num_requests; ++i) {
    const double rate = RateAt(o, i, num_requests);
    double gap = 0;
    if (std::isinf(o.burstiness)) {
      gap = 1.0 / rate;
    } else {
      // Gamma with shape k = burstiness and scale 1/(rate k): mean 1/rate, CV 1/sqrt(k).
      std::gamma_distribution<double> gamma(o.burstiness, 1.0 / (rate * o.burstiness));
      gap = gamma(rng);
    }
    t += gap;
    at[static_cast<size_t>(i)] = t;
  }
  if (o.ramp_up == RampUp::kNone && at.back() > 0) {
    const double scale = static_cast<double>(num_requests) / o.rate / at.back();
    for (double& x : at) x *= scale;
  }
  return at;
}

Result<std::vector<double>> ScheduleFromTimestamps(const std::vector<double>& timestamps_ms, double rate) {
  std::vector<double> at;
  if (timestamps_ms.empty()) return at;
  double first = std::numeric_limits<double>::infinity();
  for (double ts : timestamps_ms) {
    if (!(ts >= 0) || std::isinf(ts)) return InvalidArgumentError("a trace timestamp is negative or not a number");
    first = std::min(first, ts);
  }
  for (double ts : timestamps_ms) at.push_back((ts - first) / 1000.0);
  if (rate > 0 && !std::isinf(rate) && at.size() > 1) {
    const double span = *std::max_element(at.begin(), at.end());
    if (span > 0) {
      const double scale = static_cast<double>(at.size()) / rate / span;
      for (double& x : at) x *= scale;
    }
  }
  return at;
}

}  // namespace tandem::loadgen
