#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace tandem {

Status SamplingParams::Validate() const {
  auto bad = [](const char* field, const std::string& why) {
    return InvalidArgumentError(std::string(field) + " " + why);
  };
  if (!std::isfinite(temperature) || temperature < 0.0f) return bad("temperature", "must be >= 0");
  if (top_k < -1) return bad("top_k", "must be -1, 0 (off) or positive");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return bad("top_p", "must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return bad("min_p", "must be in [0, 1]");
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return bad("repetition_penalty", "must be > 0");
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) return bad("presence_penalty", "must be in [-2, 2]");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) return bad("frequency_penalty", "must be in [-2, 2]");
  if (max_tokens < 1) return bad("max_tokens", "must be >= 1");
  return Status::Ok();
}

void TokenHistory::AddPrompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) ++all_counts_[t];
}

void TokenHistory::AddOutput(int32_t token) {
  ++all_counts_[token];
  ++output_counts_[token];
}

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void ApplyPenalties(std::span<float> logits, const SamplingParams& p, const TokenHistory& h) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  if (p.repetition_penalty != 1.0f) {
    for (const auto& [tok, count] : h.all_counts()) {
      if (tok < 0 || tok >= vocab) continue;
      float& l = logits[tok];
      l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    for (const auto& [tok, count] : h.output_counts()) {
      if (tok < 0 || tok >= vocab) continue;
      logits[tok] -= p.frequency_penalty * static_cast<float>(count) + p.presence_penalty;
    }
  }
}

int32_t Argmax(std::span<const float> logits) {
  // First maximum wins, as torch.argmax does.
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// The candidates in rank order: higher logit first, ties to the lower id (a strict total order,
// so every rank is well defined).
struct RankOrder {
  std::span<const float> logits;
  bool operator()(int32_t a, int32_t b) const {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  }
};

// Finds the shortest prefix of `ids` in rank order whose weight reaches `target` (`strict`:
// exceeds it) and returns its length; `ids` is permuted so that its first `n` entries are that
// prefix (in no particular order). Quickselect on mass: expected O(ids.size()), where sorting a
// 32k-to-150k vocabulary per token would cost milliseconds. Returns ids.size() when rounding
// keeps the total just below the target.
size_t RankPrefixReaching(std::span<int32_t> ids, std::span<const double> weight, const RankOrder& rank,
                          double target, bool strict) {
  auto reaches = [&](double cum) { return strict ? cum > target : cum >= target; };
  size_t lo = 0, hi = ids.size();
  double before = 0.0;  // weight of ids[0, lo), all ranked above ids[lo, hi)
  constexpr size_t kSortBelow = 32;
  while (hi - lo > kSortBelow) {
    // Median of three as the pivot, then [lo, m) ranks above it and (m, hi) below.
    const size_t mid = lo + (hi - lo) / 2;
    int32_t a = ids[lo], b = ids[mid], c = ids[hi - 1];
    if (rank(b, a)) std::swap(a, b);
    if (rank(c, b)) std::swap(b, c);
    if (rank(b, a)) std::swap(a, b);
    const int32_t pivot = b;
    auto above_end = std::partition(ids.begin() + lo, ids.begin() + hi, [&](int32_t x) { return rank(x, pivot); });
    const size_t m = static_cast<size_t>(above_end - ids.begin());
    std::iter_swap(above_end, std::find(above_end, ids.begin() + hi, pivot));
    double above = 0.0;
    for (size_t i = lo; i < m; ++i) above += weight[ids[i]];
    if (reaches(before + above)) {
      hi = m;
    } else if (reaches(before + above + weight[pivot])) {
      return m + 1;
    } else {
      before += above + weight[pivot];
      lo = m + 1;
    }
  }
  std::sort(ids.begin() + lo, ids.begin() + hi, rank);
  for (size_t i = lo; i < hi; ++i) {
    before += weight[ids[i]];
    if (reaches(before)) return i + 1;
  }
  return hi;
}

}  // namespace

double SampleUniform(uint64_t seed, uint64_t step) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ (step * 0xd1342543de82ef95ull + 1));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// Semantics: rank the vocabulary by logit (ties to the lower id); keep the top-k; weight each
// survivor by exp((logit - max) / T); keep the shortest rank prefix holding top_p of the
// survivors' weight and, of those, the ones with weight >= min_p times the top one; draw
// u = SampleUniform(seed, step) and return the first token in rank order whose cumulative weight
// exceeds u times the kept weight. Every filter keeps a rank prefix, so only prefixes are ever
// selected (RankPrefixReaching), never the whole vocabulary sorted.
int32_t SampleToken(std::span<float> logits, const SamplingParams& p, const TokenHistory& history,
                    uint64_t step) {
  ApplyPenalties(logits, p, history);
  if (p.greedy()) return Argmax(logits);
  const RankOrder rank{logits};

  thread_local std::vector<int32_t> ids;
  thread_local std::vector<double> weight;
  ids.resize(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  size_t n = ids.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    n = static_cast<size_t>(p.top_k);
    std::nth_element(ids.begin(), ids.begin() + (n - 1), ids.end(), rank);
  }
  const int32_t top = *std::min_element(ids.begin(), ids.begin() + n, rank);

  // Weights relative to the top token, in float exp (the draw only needs ~1e-7 relative
  // accuracy) summed in double.
  const float inv_t = 1.0f / p.temperature;
  const float max_l = logits[top];
  weight.resize(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double w = std::exp((logits[ids[i]] - max_l) * inv_t);
    weight[ids[i]] = w;
    total += w;
  }
  std::span<int32_t> kept(ids.data(), n);
  if (p.top_p < 1.0f) {
    n = RankPrefixReaching(kept, weight, rank, static_cast<double>(p.top_p) * total, /*strict=*/false);
    kept = kept.first(n);
  }
  if (p.min_p > 0.0f) {  // weight[top] == 1, so the floor is min_p itself
    const auto end = std::partition(kept.begin(), kept.end(),
                                    [&](int32_t id) { return weight[id] >= static_cast<double>(p.min_p); });
    kept = kept.first(std::max<size_t>(1, static_cast<size_t>(end - kept.begin())));
  }
  double mass = 0.0;
  for (int32_t id : kept) mass += weight[id];
  const double u = SampleUniform(p.seed.value_or(0), step) * mass;
  const size_t drawn = RankPrefixReaching(kept, weight, rank, u, /*strict=*/true);
  // ids[drawn - 1] is not necessarily the last-ranked of the prefix: find it.
  return *std::max_element(kept.begin(), kept.begin() + drawn, rank);
}

}  // namespace tandem
