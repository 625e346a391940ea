#include "loadgen/plot_axes.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "loadgen/plot.h"

namespace tandem::loadgen {
namespace {

// m x 10^e, computed so that negative exponents divide by an exact power of ten (0.3, not 0.30000000000000004).
double Scaled(double m, int e) { return e >= 0 ? m * std::pow(10.0, e) : m / std::pow(10.0, -e); }

}  // namespace

namespace plot_internal {

std::string FormatTick(double v, double step, double max_abs) {
  char buf[64];
  if (std::abs(v) < step * 1e-9) v = 0;  // no "-0" from rounding
  step = std::abs(step);
  if (max_abs >= 1e5 || (max_abs > 0 && max_abs < 1e-3)) {
    int digits = static_cast<int>(std::floor(std::log10(max_abs)) - std::floor(std::log10(step) + 1e-9)) + 1;
    std::snprintf(buf, sizeof(buf), "%.*g", std::clamp(digits, 1, 6), v);
  } else {
    int decimals = step > 0 ? static_cast<int>(-std::floor(std::log10(step) + 1e-9)) : 0;
    std::snprintf(buf, sizeof(buf), "%.*f", std::clamp(decimals, 0, 6), v);
  }
  return buf;
}

Axis LogAxis(double lo, double hi) {
  Axis axis;
  axis.log = true;
  if (lo == hi) {
    lo /= 2;
    hi *= 2;
  }
  int e_lo = static_cast<int>(std::floor(std::log10(lo)));
  int e_hi = static_cast<int>(std::ceil(std::log10(hi)));
  std::vector<double> candidates;
  if (e_hi - e_lo <= 3) {
    for (int e = e_lo; e <= e_hi; ++e) {
      for (double m : {1.0, 2.0, 5.0}) candidates.push_back(Scaled(m, e));
    }
  } else {
    int stride = (e_hi - e_lo + 7) / 8;
    e_lo -= ((e_lo % stride) + stride) % stride;  // decades on multiples of the stride: 1e0, 1e3, 1e6
    for (int e = e_lo; e < e_hi + stride; e += stride) candidates.push_back(Scaled(1.0, e));
  }
  double first = candidates.front(), last = candidates.back();
  for (double c : candidates) {
    if (c <= lo * (1 + 1e-12)) first = c;
  }
  for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
    if (*it >= hi * (1 - 1e-12)) last = *it;
  }
  for (double c : candidates) {
    if (c >= first && c <= last) axis.ticks.push_back(c);
  }
  axis.lo = std::log10(first);
  axis.hi = std::log10(last);
  return axis;
}

Axis LinearAxis(double lo, double hi, std::optional<double> fixed_lo, std::optional<double> fixed_hi) {
  Axis axis;
  std::vector<double> ticks = NiceTicks(lo, hi);
  if (ticks.empty()) ticks = {lo, hi};
  axis.lo = fixed_lo ? *fixed_lo : ticks.front();
  axis.hi = fixed_hi ? *fixed_hi : ticks.back();
  double eps = (axis.hi - axis.lo) * 1e-9;
  for (double t : ticks) {
    if (t >= axis.lo - eps && t <= axis.hi + eps) axis.ticks.push_back(t);
  }
  return axis;
}

std::vector<std::string> TickLabels(const Axis& axis) {
  std::vector<std::string> labels;
  double max_abs = 0;
  for (double t : axis.ticks) max_abs = std::max(max_abs, std::abs(t));
  double step = axis.ticks.size() >= 2 ? axis.ticks[1] - axis.ticks[0] : (max_abs > 0 ? max_abs : 1);
  for (double t : axis.ticks) labels.push_back(axis.log ? FormatTick(t, t, t) : FormatTick(t, step, max_abs));
  return labels;
}

}  // namespace plot_internal

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (lo > hi) std::swap(lo, hi);
  target = std::max(target, 2);
  if (hi - lo <= std::max(std::abs(lo), std::abs(hi)) * 1e-12) {
    double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  double range = hi - lo;
  if (!std::isfinite(range)) return {lo, hi};  // beyond what a double's ticks can express
  double raw = range / (target - 1);
  int e = static_cast<int>(std::floor(std::log10(raw)));
  double f = raw / Scaled(1, e);
  // Thresholds at the geometric midpoints between 1, 2, 5 and 10.
  double m = f < std::sqrt(2.0) ? 1 : f < std::sqrt(10.0) ? 2 : f < std::sqrt(50.0) ? 5 : 10;
  if (m == 10) {
    m = 1;
    ++e;
  }
  double step = Scaled(m, e);
  double k_lo = std::floor(lo / step + 1e-9), k_hi = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double k = k_lo; k <= k_hi; ++k) ticks.push_back(Scaled(k * m, e));
  return ticks;
}

}  // namespace tandem::loadgen
