#include "loadgen/sweep.h"

#include <cmath>

namespace tandem::loadgen {

Result<SweepResult> RunSweep(const SweepOptions& o, const std::function<Result<double>(double)>& measure) {
  if (!(o.start > 0) || std::isinf(o.start)) return InvalidArgumentError("a sweep starts at a positive, finite value");
  if (!(o.goal > 0 && o.goal <= 1)) return InvalidArgumentError("--attainment must be in (0, 100]");
  if (!(o.tolerance > 0 && o.tolerance < 1)) return InvalidArgumentError("the sweep tolerance must be in (0, 1)");
  if (o.max_points < 2) return InvalidArgumentError("a sweep needs at least 2 points");
  SweepResult out;
  // `good` is the side that meets the goal: low rates, or large scales.
  double good = 0, bad = 0;
  bool have_good = false, have_bad = false;
  auto run = [&](double x) -> Result<bool> {
    auto a = measure(x);
    if (!a.ok()) return a.status();
    out.points.push_back({x, *a});
    const bool met = *a >= o.goal;
    if (met) {
      if (!have_good || (o.increasing ? x < good : x > good)) good = x;
      have_good = true;
    } else {
      if (!have_bad || (o.increasing ? x > bad : x < bad)) bad = x;
      have_bad = true;
    }
    return met;
  };
  // Bracket: from the start, double away from the side already seen until the other shows.
  double x = o.start;
  while (static_cast<int>(out.points.size()) < o.max_points && !(have_good && have_bad)) {
    auto met = run(x);
    if (!met.ok()) return met.status();
    const bool towards_bad = *met;  // met: move towards harder (higher rate / smaller scale)
    const bool up = o.increasing ? !towards_bad : towards_bad;
    x = up ? x * 2 : x / 2;
  }
  // Bisect (geometric mean: rates and scales span decades).
  while (have_good && have_bad && static_cast<int>(out.points.size()) < o.max_points) {
    const double lo = std::min(good, bad), hi = std::max(good, bad);
    if ((hi - lo) / hi <= o.tolerance) break;
    auto met = run(std::sqrt(lo * hi));
    if (!met.ok()) return met.status();
  }
  out.bracketed = have_good && have_bad;
  out.best = have_good ? good : 0;
  return out;
}

}  // namespace tandem::loadgen
