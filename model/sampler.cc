#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

namespace tandem {

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

// A token's rank key: ascending keys are rank order (higher logit first, ties to the lower id,
// a strict total order). The high half is the logit's bits made order-preserving and inverted,
// the low half the id, so selection compares plain integers in contiguous memory instead of
// chasing ids into the logits.
uint64_t RankKey(float logit, int32_t id) {
  uint32_t bits;
  std::memcpy(&bits, &logit, sizeof(bits));
  const uint32_t ascending = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  return (static_cast<uint64_t>(~ascending) << 32) | static_cast<uint32_t>(id);
}
int32_t KeyId(uint64_t key) { return static_cast<int32_t>(key & 0xffffffffu); }

// Finds the shortest rank-order prefix of `keys` whose weight reaches `target` (`strict`:
// exceeds it) and returns its length; `keys` is permuted so that its first `n` entries are that
// prefix, the last-ranked of them at [n - 1]. Quickselect on mass: expected O(keys.size()),
// where sorting a 32k-to-150k vocabulary per token costs milliseconds. Returns keys.size() when
// rounding keeps the total just below the target.
size_t RankPrefixReaching(std::span<uint64_t> keys, std::span<const double> weight, double target, bool strict) {
  auto reaches = [&](double cum) { return strict ? cum > target : cum >= target; };
  size_t lo = 0, hi = keys.size();
  double before = 0.0;  // weight of keys[0, lo), all ranked above keys[lo, hi)
  constexpr size_t kSortBelow = 32;
  while (hi - lo > kSortBelow) {
    // Median of three as the pivot; then [lo, m) ranks above it, m holds it, (m, hi) below.
    const size_t mid = lo + (hi - lo) / 2;
    const uint64_t pivot = std::max(std::min(keys[lo], keys[mid]), std::min(std::max(keys[lo], keys[mid]), keys[hi - 1]));
    auto above_end = std::partition(keys.begin() + lo, keys.begin() + hi, [pivot](uint64_t k) { return k < pivot; });
    const size_t m = static_cast<size_t>(above_end - keys.begin());
    std::iter_swap(above_end, std::find(above_end, keys.begin() + hi, pivot));
    double above = 0.0;
    for (size_t i = lo; i < m; ++i) above += weight[KeyId(keys[i])];
    if (reaches(before + above)) {
      hi = m;
    } else if (reaches(before + above + weight[KeyId(pivot)])) {
      return m + 1;
    } else {
      before += above + weight[KeyId(pivot)];
      lo = m + 1;
    }
  }
  std::sort(keys.begin() + lo, keys.begin() + hi);
  for (size_t i = lo; i < hi; ++i) {
    before += weight[KeyId(keys[i])];
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

  thread_local std::vector<uint64_t> keys;
  thread_local std::vector<double> weight;
  keys.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) keys[i] = RankKey(logits[i], static_cast<int32_t>(i));
  size_t n = keys.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    n = static_cast<size_t>(p.top_k);
    std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n - 1), keys.end());
  }
  const int32_t top = KeyId(*std::min_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n)));

  // Weights relative to the top token, in float exp (the draw only needs ~1e-7 relative
  // accuracy) summed in double.
  const float inv_t = 1.0f / p.temperature;
  const float max_l = logits[top];
  weight.resize(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = KeyId(keys[i]);
    const double w = std::exp((logits[id] - max_l) * inv_t);
    weight[id] = w;
    total += w;
  }
  std::span<uint64_t> kept(keys.data(), n);
  if (p.top_p < 1.0f) {
    n = RankPrefixReaching(kept, weight, static_cast<double>(p.top_p) * total, /*strict=*/false);
    kept = kept.first(n);
  }
  if (p.min_p > 0.0f) {  // weight[top] == 1, so the floor is min_p itself
    const auto end = std::partition(kept.begin(), kept.end(), [&](uint64_t k) {
      return weight[KeyId(k)] >= static_cast<double>(p.min_p);
    });
    kept = kept.first(std::max<size_t>(1, static_cast<size_t>(end - kept.begin())));
  }
  double mass = 0.0;
  for (uint64_t k : kept) mass += weight[KeyId(k)];
  const double u = SampleUniform(p.seed.value_or(0), step) * mass;
  const size_t drawn = RankPrefixReaching(kept, weight, u, /*strict=*/true);
  return KeyId(kept[drawn - 1]);
}

}  // namespace tandem
