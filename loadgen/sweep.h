// Sweeps over benchmark runs, DistServe's way of turning attainment into one number:
//   rate       the highest request rate whose joint SLO attainment is at least the goal
//              (DistServe's "goodput"): grow (or shrink) the rate by doubling until the goal is
//              bracketed, then bisect; every point is a fresh run;
//   slo-scale  the tightest scale of the targets that still meets the goal at a fixed rate:
//              the same search over the scale (attainment falls as the scale shrinks).
// The search is separate from running, so it is tested against known curves.
#pragma once

#include <functional>
#include <vector>

#include "common/status.h"

namespace tandem::loadgen {

struct SweepPoint {
  double x = 0;           // the rate (req/s) or the SLO scale
  double attainment = 0;  // joint, 0..1
};

struct SweepOptions {
  double start = 1;         // first point tried
  double goal = 0.9;        // attainment to reach
  double tolerance = 0.05;  // stop when (hi - lo) / hi is below it
  int max_points = 12;      // runs at most
  bool increasing = false;  // attainment rises with x (slo-scale) instead of falling (rate)
};

struct SweepResult {
  std::vector<SweepPoint> points;  // in the order they were run
  // rate: the highest rate meeting the goal; slo-scale: the smallest scale meeting it. 0 when
  // no point met it.
  double best = 0;
  bool bracketed = false;  // a point on each side of the goal was found
};

// `measure(x)` runs one point and returns its joint attainment (or an error that ends the
// sweep). InvalidArgument for a start, goal or tolerance out of range.
Result<SweepResult> RunSweep(const SweepOptions& options, const std::function<Result<double>(double)>& measure);

}  // namespace tandem::loadgen
