// Axis ranges, tick positions and tick labels for loadgen/plot.cc: pure arithmetic with no cairo, kept
// apart from the drawing so that it can be read and tested on its own. Internal to the plotter.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace tandem::loadgen::plot_internal {

// An axis in "units": the value itself, or log10 of it for a log axis.
struct Axis {
  bool log = false;
  double lo = 0, hi = 1;      // units
  std::vector<double> ticks;  // values
  double Unit(double v) const { return log ? std::log10(v) : v; }
};

// Compact, and with just enough decimals for `step` to show: "0.5", "10", "2.5e+05" only when huge or tiny.
std::string FormatTick(double v, double step, double max_abs);

// Ticks at 1/2/5 x 10^k (every decade, or every few decades when the range is wide), and the axis
// snapped outwards to the nearest of them. REQUIRES: 0 < lo <= hi, both finite.
Axis LogAxis(double lo, double hi);

// A linear axis over [lo, hi]; each end is either fixed, or extended to the nice tick covering it.
Axis LinearAxis(double lo, double hi, std::optional<double> fixed_lo, std::optional<double> fixed_hi);

// One label per tick of `axis`, formatted with just enough decimals for its step.
std::vector<std::string> TickLabels(const Axis& axis);

}  // namespace tandem::loadgen::plot_internal
