// Synthetic workloads whose prompt and output lengths follow published statistics, with prompts
// of random ordinary token ids (exact lengths). The sources and numbers are in
// synthetic_presets.cc and docs/goodput.md; where a source gives only a mean or a range, the
// shape we assume is said there too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "loadgen/workload.h"

namespace tandem::loadgen {

// A length distribution: log-normal with the given median and sigma, or uniform over
// [lo, hi] when sigma < 0; always clipped to [lo, hi].
struct LengthDist {
  double median = 0;
  double sigma = -1;
  int32_t lo = 1;
  int32_t hi = 1;
  double mean() const;  // of the unclipped distribution (uniform: (lo + hi) / 2)
};

struct SyntheticPreset {
  std::string name;
  std::string what;    // one line for --help and the docs
  std::string source;  // where the numbers come from
  LengthDist input, output;
  double ttft_ms = 0, tpot_ms = 0;  // DistServe's SLO for this application (0: none published)
};

const std::vector<SyntheticPreset>& SyntheticPresets();
Result<SyntheticPreset> FindSyntheticPreset(const std::string& name);

// options.preset's requests (options.num_prompts of them, seeded).
Result<Workload> GenerateSynthetic(const WorkloadOptions& options);

}  // namespace tandem::loadgen
