// Measures a model's real step times on this device and fits the latency model to them
// (`tandem profile`). Three phases, each over a grid of shapes and, for --validate, over random
// held-out shapes the fit never saw:
//   prefill  Transformer::Forward over batches of prompts and prompt chunks behind cached context
//   decode   Forward over B sequences of one token each, at given contexts (KV contents do not
//            change the time, so the context is allocated, not computed)
//   transfer the KV of a prompt moved between two UCX workers in this process, one put per
//            layer and a flush, as the prefill node posts it (default UCX transports)
// Each shape runs `repeats` times (after an untimed run when it is the largest step yet); the
// median counts.
// Threading: one thread; the backend's own threads do the compute.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "model/model_weights.h"
#include "slo/latency_model.h"

namespace tandem {

struct ProfilerOptions {
  int32_t max_num_batched_tokens = 2048;         // the largest prefill step (the nodes' token budget)
  int32_t max_num_seqs = 64;                     // the largest decode batch
  int32_t max_context = 2048;                    // per sequence; capped by the model's positions
  uint64_t kv_budget_bytes = uint64_t{4} << 30;  // decode shapes needing more KV are skipped
  int32_t repeats = 3;
  bool measure_transfer = true;
  uint64_t seed = 1;                                 // held-out shapes
  int32_t held_out = 12;                             // held-out shapes per phase
  std::function<void(const std::string&)> progress;  // one line per phase (optional)
};

// One prefill step: its chunks as (start, tokens).
using PrefillShape = std::vector<std::pair<int32_t, int32_t>>;
// One decode step: each sequence's context (tokens already in the cache, plus the new one).
using DecodeShape = std::vector<int32_t>;

struct ProfileShapes {
  std::vector<PrefillShape> prefill;
  std::vector<DecodeShape> decode;
  std::vector<int32_t> transfer;  // prompt tokens whose KV moves
};

struct ProfileSamples {
  std::vector<PrefillSample> prefill;
  std::vector<DecodeSample> decode;
  std::vector<TransferSample> transfer;
};

// The fitting grid, and random shapes in the same ranges (seeded) for validation.
ProfileShapes GridShapes(const ModelConfig& config, const ProfilerOptions& options);
ProfileShapes HeldOutShapes(const ModelConfig& config, const ProfilerOptions& options);

class LatencyProfiler {
 public:
  // Makes the transformer and a KV cache large enough for every shape the options allow.
  static Result<std::unique_ptr<LatencyProfiler>> Create(Backend& backend, const ModelWeights& weights,
                                                         ProfilerOptions options);
  ~LatencyProfiler();

  Result<ProfileSamples> Measure(const ProfileShapes& shapes);
  // Both lists, their shapes alternating within each phase, so that a drift of the machine's
  // speed during the run (other load, memory bandwidth changing level) affects both alike.
  Result<std::pair<ProfileSamples, ProfileSamples>> MeasureInterleaved(const ProfileShapes& a, const ProfileShapes& b);

 private:
  struct State;
  explicit LatencyProfiler(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Fits every phase (transfer only when sampled) into a profile of `weights`' model.
Result<LatencyProfile> FitProfile(const ModelConfig& config, DType kv_dtype, const ProfileSamples& samples);
// Mean absolute percentage error of `profile` on measured samples, per phase.
ProfileValidation ValidateProfile(const LatencyProfile& profile, const ProfileSamples& samples);

}  // namespace tandem
