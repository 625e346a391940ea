// When each request of a benchmark is sent: seconds after the start, one per request, in order.
// Open loop (the schedule never waits for the server), as `vllm bench serve` generates it:
//   - rate inf: every request at 0;
//   - otherwise inter-arrival gaps drawn from a gamma distribution with shape `burstiness` and
//     mean 1/rate (burstiness 1: exponential gaps, a Poisson process; < 1 burstier; > 1 more
//     regular; inf: constant gaps). Without a ramp-up the schedule is then rescaled so that the
//     last request goes out at n / rate exactly, as vLLM does, so runs with different seeds
//     offer the same average rate;
//   - a ramp-up moves the rate from `start_rps` to `end_rps` over the requests, linearly or
//     exponentially (vLLM's `_get_current_request_rate`), and is not rescaled.
// Traces bring their own times (ScheduleFromTimestamps). Same seed, same schedule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem::loadgen {

enum class RampUp { kNone, kLinear, kExponential };

struct ArrivalOptions {
  double rate = 0;  // requests per second; <= 0 or inf: all at once
  double burstiness = 1.0;
  RampUp ramp_up = RampUp::kNone;
  double ramp_up_start_rps = 0;
  double ramp_up_end_rps = 0;
  uint64_t seed = 0;
};

// InvalidArgument for a non-positive burstiness or a ramp-up without positive start/end rates.
Result<std::vector<double>> ArrivalSchedule(int64_t num_requests, const ArrivalOptions& options);

// Trace replay: timestamps (milliseconds, any origin, not necessarily sorted) made relative to the
// first one, in seconds; with `rate` > 0 the schedule is stretched or squeezed so that its mean
// rate is `rate` (the shape of the trace kept). InvalidArgument for a negative timestamp.
Result<std::vector<double>> ScheduleFromTimestamps(const std::vector<double>& timestamps_ms, double rate);

// "linear" / "exponential" -> RampUp; InvalidArgument otherwise.
Result<RampUp> ParseRampUp(const std::string& name);

}  // namespace tandem::loadgen
