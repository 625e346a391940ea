// Between the simulator and the benchmark's formats: a `tandem bench` workload and arrival
// schedule become SimRequests (with the SLO classes of the router's --slo-config), and the
// simulated RequestRecords become the benchmark's per-request results, so `tandem simulate`
// prints the same table, writes the same result JSON and `tandem bench plot` draws it.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "loadgen/metrics.h"
#include "loadgen/workload.h"
#include "sim/simulator.h"
#include "slo/slo_config.h"

namespace tandem {

// One SimRequest per workload request, sent at `send_s[i]` seconds; its SLO from `classes` (null:
// none): the request's own class, else the default class. InvalidArgument for a request without
// a known length or naming a class `classes` does not define.
Result<std::vector<SimRequest>> SimRequestsFor(const loadgen::Workload& workload, const std::vector<double>& send_s,
                                               const SloConfig* classes);

// The client's view of each simulated request (times relative to the first arrival, as a
// benchmark's are relative to its start), and the run's duration (first arrival to last finish).
std::vector<loadgen::RequestResult> ResultsOf(const SimResult& sim, const std::vector<SimRequest>& requests,
                                              const loadgen::Workload& workload, double* duration_s);

}  // namespace tandem
