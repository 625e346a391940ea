#include "sim/roofline_profile.h"

#include <cmath>
#include <sstream>

namespace tandem {

Result<LatencyProfile> RooflineProfile(const ModelConfig& c, const RooflineHardware& hw) {
  if (!(hw.tflops > 0) || !(hw.mem_gbps > 0) || !(hw.link_gbps > 0)) {
    return InvalidArgumentError("--synthetic needs --flops, --mem-bw and --link-bw, all positive");
  }
  if (hw.tp < 1) return InvalidArgumentError("--tp must be at least 1");
  if (hw.tp > 1 && !(hw.interconnect_gbps > 0)) {
    return InvalidArgumentError("--tp > 1 needs --interconnect-bw (the all-reduce bandwidth)");
  }
  if (!(hw.mfu > 0 && hw.mfu <= 1) || !(hw.bandwidth_efficiency > 0 && hw.bandwidth_efficiency <= 1)) {
    return InvalidArgumentError("--mfu and --bandwidth-efficiency must be in (0, 1]");
  }
  if (c.num_layers <= 0 || c.hidden_size <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0) {
    return InvalidArgumentError("the model config has no layer shapes");
  }
  const double flops_per_us = hw.tflops * 1e6 * hw.mfu * hw.tp;  // FLOP per microsecond
  const double bytes_per_us = hw.mem_gbps * 1e3 * hw.bandwidth_efficiency * hw.tp;
  const double params = static_cast<double>(c.NumParameters());
  const double weight_bytes = params * hw.dtype_bytes;
  const double layers = static_cast<double>(c.num_layers);

  LatencyProfile p;
  p.model = c.model_type.empty() ? c.architecture : c.model_type;
  std::ostringstream device;
  device << "synthetic " << (hw.name.empty() ? "device" : hw.name) << " x" << hw.tp << " (" << hw.tflops << " TFLOP/s, "
         << hw.mem_gbps << " GB/s, link " << hw.link_gbps << " GB/s)";
  p.device = device.str();
  p.threads = hw.tp;
  p.num_layers = static_cast<int32_t>(c.num_layers);
  p.kv_bytes_per_token = static_cast<int64_t>(std::llround(2 * layers * c.num_kv_heads * c.head_dim * hw.dtype_bytes));

  // Tensor parallelism: per layer, two all-reduces of the step's activations (tokens x hidden).
  const double allreduce_fixed_us = hw.tp > 1 ? 2 * layers * hw.layer_latency_us : 0;
  const double allreduce_per_token_us =
      hw.tp > 1 ? 2 * layers * 2.0 * (hw.tp - 1) / hw.tp * c.hidden_size * hw.dtype_bytes / (hw.interconnect_gbps * 1e3)
                : 0;
  const double weights_us = weight_bytes / bytes_per_us;
  const double compute_per_token_us = 2 * params / flops_per_us;
  const double attention_per_pair_us = 4 * layers * c.hidden_size / flops_per_us;
  // Prefill: reading the weights bounds a small step; above the ridge point compute does.
  const int64_t ridge = std::max<int64_t>(1, static_cast<int64_t>(weights_us / compute_per_token_us));
  p.prefill = {
      {ridge, hw.step_overhead_us + allreduce_fixed_us + weights_us, allreduce_per_token_us, attention_per_pair_us},
      {0, hw.step_overhead_us + allreduce_fixed_us, compute_per_token_us + allreduce_per_token_us,
       attention_per_pair_us}};
  // Decode: the weights once per step, each sequence's KV, each sequence's matmul FLOPs.
  p.decode = {{0, hw.step_overhead_us + allreduce_fixed_us + weights_us, p.kv_bytes_per_token / bytes_per_us,
               compute_per_token_us + allreduce_per_token_us}};
  p.transfer = {{0, hw.layer_latency_us, hw.link_gbps * 1e3}};
  if (hw.mem_gib > 0) {
    if (!(hw.memory_utilization > 0 && hw.memory_utilization <= 1)) {
      return InvalidArgumentError("--gpu-memory-utilization must be in (0, 1]");
    }
    const double usable_gib = hw.mem_gib * hw.memory_utilization * hw.tp;
    const double weights_gib = weight_bytes / (1ull << 30);
    if (usable_gib <= weights_gib) {
      std::ostringstream why;
      why << "the weights (" << weights_gib << " GiB) do not fit " << hw.tp << " x " << hw.mem_gib << " GiB at "
          << hw.memory_utilization << " utilisation: no room for a KV pool";
      return InvalidArgumentError(why.str());
    }
    p.kv_cache_gib = usable_gib - weights_gib;
  }
  return p;
}

}  // namespace tandem
