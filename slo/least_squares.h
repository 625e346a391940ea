// Small weighted least-squares fits for the latency model: a handful of columns, tens of rows.
// Solved by Householder QR on unit-scaled columns (not the normal equations, which square the
// condition number: Σl² and Σl differ by three orders of magnitude), and kept non-negative by
// dropping any column whose coefficient comes out negative and refitting (a step time never
// shrinks as work grows; a negative term is noise that would extrapolate badly).
#pragma once

#include <span>
#include <vector>

#include "common/status.h"

namespace tandem {

// rows[i] holds the regressors of sample i (all rows the same length k), y[i] its value (> 0).
// Minimises Σ ((rows[i]·x - y[i]) / y[i])²: relative error, so short steps weigh as much as long
// ones. Returns x (k values, each >= 0). InvalidArgument for inconsistent shapes, fewer rows than
// columns or a non-positive y; FailedPrecondition when no column is usable.
Result<std::vector<double>> FitNonNegativeRelative(std::span<const std::vector<double>> rows,
                                                   std::span<const double> y);

// Mean absolute percentage error of predictions against measurements (both > 0), in percent.
double MeanAbsPercentError(std::span<const double> predicted, std::span<const double> measured);

}  // namespace tandem
