#include "slo/least_squares.h"

#include <cmath>
#include <string>

namespace tandem {
namespace {

// Least squares on the columns marked `active` of the (already weighted) matrix a, by Householder
// QR. Inactive or numerically dependent columns get 0.
std::vector<double> SolveQr(std::vector<std::vector<double>> a, std::vector<double> b, std::vector<bool> active) {
  const size_t m = a.size();
  const size_t k = active.size();
  std::vector<size_t> cols;
  for (size_t j = 0; j < k; ++j) {
    if (active[j]) cols.push_back(j);
  }
  // Scale each active column to unit norm; remember the scale to undo it.
  std::vector<double> scale(k, 1.0);
  for (size_t j : cols) {
    double norm = 0;
    for (size_t i = 0; i < m; ++i) norm += a[i][j] * a[i][j];
    norm = std::sqrt(norm);
    scale[j] = norm > 0 ? norm : 1.0;
    for (size_t i = 0; i < m; ++i) a[i][j] /= scale[j];
  }
  std::vector<bool> usable(k, false);
  std::vector<size_t> pivots;  // pivots[r]: the column whose Householder step produced row r
  for (size_t j : cols) {
    const size_t r = pivots.size();
    if (r >= m) break;
    double norm = 0;
    for (size_t i = r; i < m; ++i) norm += a[i][j] * a[i][j];
    norm = std::sqrt(norm);
    // A unit column with almost nothing left after projecting out the earlier ones is a
    // combination of them: it carries no information of its own, and gets 0.
    if (norm < 1e-9) continue;
    const double alpha = a[r][j] > 0 ? -norm : norm;
    std::vector<double> v(m, 0.0);
    for (size_t i = r; i < m; ++i) v[i] = a[i][j];
    v[r] -= alpha;
    double vnorm2 = 0;
    for (size_t i = r; i < m; ++i) vnorm2 += v[i] * v[i];
    auto reflect = [&](auto&& at) {
      double dot = 0;
      for (size_t i = r; i < m; ++i) dot += v[i] * at(i);
      const double f = 2 * dot / vnorm2;
      for (size_t i = r; i < m; ++i) at(i) -= f * v[i];
    };
    for (size_t jj : cols) reflect([&](size_t i) -> double& { return a[i][jj]; });
    reflect([&](size_t i) -> double& { return b[i]; });
    usable[j] = true;
    pivots.push_back(j);
  }
  // Back substitution over the rows 0..pivots.size()-1.
  std::vector<double> x(k, 0.0);
  for (size_t r = pivots.size(); r-- > 0;) {
    const size_t j = pivots[r];
    double s = b[r];
    for (size_t q = r + 1; q < pivots.size(); ++q) s -= a[r][pivots[q]] * x[pivots[q]];
    x[j] = s / a[r][j];
  }
  for (size_t j = 0; j < k; ++j) x[j] = usable[j] ? x[j] / scale[j] : 0.0;
  return x;
}

}  // namespace

Result<std::vector<double>> FitNonNegativeRelative(std::span<const std::vector<double>> rows,
                                                   std::span<const double> y) {
  if (rows.size() != y.size()) return InvalidArgumentError("least squares: rows and values differ in number");
  if (rows.empty()) return InvalidArgumentError("least squares: no samples");
  const size_t k = rows[0].size();
  if (rows.size() < k) {
    return InvalidArgumentError("least squares: " + std::to_string(rows.size()) + " samples for " + std::to_string(k) +
                                " coefficients");
  }
  std::vector<std::vector<double>> a(rows.size(), std::vector<double>(k));
  std::vector<double> b(rows.size(), 1.0);  // y_i / y_i
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != k) return InvalidArgumentError("least squares: rows differ in length");
    if (!(y[i] > 0) || !std::isfinite(y[i])) return InvalidArgumentError("least squares: values must be positive");
    for (size_t j = 0; j < k; ++j) a[i][j] = rows[i][j] / y[i];
  }
  std::vector<bool> active(k, true);
  for (size_t round = 0; round < k; ++round) {
    std::vector<double> x = SolveQr(a, b, active);
    size_t most_negative = k;
    for (size_t j = 0; j < k; ++j) {
      if (active[j] && x[j] < 0 && (most_negative == k || x[j] < x[most_negative])) most_negative = j;
    }
    if (most_negative == k) return x;
    active[most_negative] = false;
    bool any = false;
    for (bool on : active) any = any || on;
    if (!any) break;
  }
  return FailedPreconditionError("least squares: no non-negative fit (every coefficient came out negative)");
}

double MeanAbsPercentError(std::span<const double> predicted, std::span<const double> measured) {
  if (predicted.empty() || predicted.size() != measured.size()) return 0;
  double sum = 0;
  for (size_t i = 0; i < predicted.size(); ++i) sum += std::abs(predicted[i] - measured[i]) / measured[i];
  return 100.0 * sum / static_cast<double>(predicted.size());
}

}  // namespace tandem
