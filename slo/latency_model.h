// The latency model: how long a node's steps take, fitted to measured steps of the real model on
// the real device (`tandem profile`), the way DistServe's simulator models its instances:
//
//   prefill step  t = a + b·Σn + c·Σn(s+n)    over the step's prompt chunks (n new tokens after
//                                             s cached ones; a whole prompt: s = 0, so Σl²)
//   decode step   t = a + b·Σctx + c·B        B sequences holding Σctx tokens of context; two
//                                             regimes split at a batch size, each its own (a, b, c)
//   KV transfer   t = L·p + bytes / bandwidth over the real transport (L layers, each posted
//                                             as its own put, p the cost of one)
//
// All times in microseconds. A profile belongs to one model on one device with one thread
// count; nodes load it (--latency-profile) and correct it online (LatencyCorrection), the router
// predicts TTFT and TPOT with it, and the simulator runs on it.
// Threading: immutable after loading; safe to share.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

// The work of one prefill step, accumulated chunk by chunk.
struct PrefillWork {
  int64_t tokens = 0;    // Σn
  double quadratic = 0;  // Σn(s+n): query-key pairs, up to the causal half
  void AddChunk(int64_t start, int64_t num_tokens) {
    tokens += num_tokens;
    quadratic += static_cast<double>(num_tokens) * static_cast<double>(start + num_tokens);
  }
};

// Each phase is fitted in up to two regimes split at a size (prefill: tokens in the step; decode:
// sequences in the batch; transfer: bytes), as DistServe does for decode: a CPU or GPU step is
// bound by weight reads below some size and by compute above it, and a copy runs from cache
// below some size and from DRAM above it. A regime covers sizes up to its `max_*` (0: any).
struct PrefillRegime {
  int64_t max_tokens = 0;
  double a_us = 0;
  double b_us_per_token = 0;
  double c_us_per_pair = 0;
};

struct DecodeRegime {
  int32_t max_batch = 0;
  double a_us = 0;
  double b_us_per_context_token = 0;
  double c_us_per_sequence = 0;
};

struct TransferRegime {
  uint64_t max_bytes = 0;
  double per_layer_us = 0;
  double bytes_per_us = 0;
};

// The measured accuracy on shapes the fit never saw (`tandem profile --validate`).
struct ProfileValidation {
  int32_t samples = 0;
  double prefill_mape = -1;  // percent; -1 when not measured
  double decode_mape = -1;
  double transfer_mape = -1;
};

struct LatencyProfile {
  std::string model;   // the model directory's name, for humans
  std::string device;  // "cpu", "cuda"
  int32_t threads = 0;
  int32_t max_num_batched_tokens = 2048;  // the token budget of one prefill step it was fitted for
  int32_t num_layers = 0;
  int64_t kv_bytes_per_token = 0;        // K and V of every layer
  double kv_cache_gib = 0;               // the KV pool one instance holds, when known (0: not said)
  std::vector<PrefillRegime> prefill;    // ascending max_tokens, the last has max_tokens 0
  std::vector<DecodeRegime> decode;      // ascending max_batch, the last has max_batch 0
  std::vector<TransferRegime> transfer;  // ascending max_bytes, the last 0; empty: not measured
  ProfileValidation validation;

  double PrefillUs(const PrefillWork& work) const;
  // A whole prompt of `tokens` run alone.
  double PrefillUs(int64_t tokens) const;
  // A queue of prompts worked off in steps of max_num_batched_tokens: one fixed cost per step.
  double QueuedPrefillUs(const PrefillWork& work) const;
  double DecodeStepUs(int32_t batch, int64_t context_tokens) const;
  // The whole KV of `tokens` prompt tokens (whole blocks move, but the profile does not know the
  // block size: the caller rounds if it cares); 0 when the profile has no transfer.
  double TransferUs(int64_t tokens) const;
  double TransferBytesUs(uint64_t bytes) const;

  std::string ToJson() const;
};

// InvalidArgument naming `source` and the field at fault; NotFound for a missing file.
Result<LatencyProfile> ParseLatencyProfile(const std::string& text, const std::string& source);
Result<LatencyProfile> LoadLatencyProfile(const std::string& path);

// Measured samples the fits take.
struct PrefillSample {
  PrefillWork work;
  double us = 0;
};
struct DecodeSample {
  int32_t batch = 0;
  int64_t context_tokens = 0;
  double us = 0;
};
struct TransferSample {
  int32_t layers = 0;
  uint64_t bytes = 0;
  double us = 0;
};

// Each fit tries one regime, and two split between every pair of adjacent sampled sizes with
// enough samples on both sides (two more than coefficients), and keeps the split with the
// smallest relative error; one regime unless the split earns its extra coefficients by the
// Bayesian information criterion (so noise alone does not split a phase) and the two regimes
// agree within 25% at the samples either side of the boundary (no jump that would make a
// larger step look cheaper than a smaller one).
Result<std::vector<PrefillRegime>> FitPrefill(std::span<const PrefillSample> samples);
Result<std::vector<DecodeRegime>> FitDecode(std::span<const DecodeSample> samples);
Result<std::vector<TransferRegime>> FitTransfer(std::span<const TransferSample> samples);

// Online correction of a profile by a node's measured steps: an exponentially weighted mean of
// measured / predicted per phase, multiplied into later predictions. Starts at 1 (trust the
// profile) and follows drift (other load on the machine, a different thread count) within a
// few tens of steps.
class LatencyCorrection {
 public:
  explicit LatencyCorrection(double weight = 0.1) : weight_(weight) {}
  void Observe(double predicted_us, double measured_us);
  double factor() const { return factor_; }
  int64_t observations() const { return observations_; }

 private:
  double weight_;
  double factor_ = 1.0;
  int64_t observations_ = 0;
};

}  // namespace tandem
