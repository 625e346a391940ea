// A latency profile for hardware we do not have (`tandem profile --synthetic`), derived from the
// model's shapes and the hardware's peak numbers with the roofline model, so a GPU cluster can be
// planned before it is rented. Every number is derived, none measured:
//   prefill step   max(weights / bandwidth, 2·params·Σn / compute) + attention 4·L·hidden per
//                  query-key pair / compute (two regimes: memory-bound below the ridge point,
//                  compute-bound above it), plus the tensor-parallel all-reduces;
//   decode step    (weights + every sequence's KV) / bandwidth + 2·params per sequence / compute;
//   KV transfer    a fixed cost per layer + bytes / link bandwidth;
//   KV pool        (device memory x utilisation x tp) - the weights, when the memory is given.
// Peaks are scaled by achievable fractions (model FLOPs utilisation, bandwidth efficiency).
// Tensor parallelism over `tp` devices multiplies compute and bandwidth by tp and adds two
// all-reduces of the step's activations per layer over `interconnect_gbps`.
#pragma once

#include <string>

#include "common/status.h"
#include "model/model_config.h"
#include "slo/latency_model.h"

namespace tandem {

struct RooflineHardware {
  double tflops = 0;             // dense 16-bit peak per device, TFLOP/s
  double mem_gbps = 0;           // device memory bandwidth, GB/s
  double link_gbps = 0;          // KV transfer link between instances, GB/s
  double interconnect_gbps = 0;  // tensor-parallel all-reduce bandwidth per device, GB/s (tp > 1)
  int tp = 1;                    // devices per instance
  double mfu = 0.6;              // achieved fraction of peak compute
  double bandwidth_efficiency = 0.8;
  double mem_gib = 0;               // device memory per device, GiB (0: the profile says no KV pool)
  double memory_utilization = 0.9;  // the share of it the instance may use (vLLM's default)
  double dtype_bytes = 2;           // weights and KV (bf16)
  double step_overhead_us = 20;     // launch and scheduling per step
  double layer_latency_us = 5;      // per layer of a KV transfer; per all-reduce
  std::string name;                 // "H100", for the profile's device field
};

// InvalidArgument for missing or non-positive hardware numbers, an empty model config, or
// weights that leave no room for a KV pool.
Result<LatencyProfile> RooflineProfile(const ModelConfig& config, const RooflineHardware& hw);

}  // namespace tandem
