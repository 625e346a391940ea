// Capacity planning on the simulator (`tandem plan`): DistServe's placement search for a
// cluster whose prefill and decode instances sit on their own nodes (its Algorithm 1): every
// instance size is simulated one phase at a time to find the highest rate one instance serves
// within the phase's target (TTFT for prefill, TPOT for decode) at the attainment goal; the
// best size per phase (most rate per resource) is replicated to the budget or to the target rate;
// the chosen P:D deployment is then simulated whole (transfer, queueing, both phases) to report
// the goodput it really reaches. Colocated instances of every size are searched the same way, as
// the baseline a disaggregated plan must beat.
//
// With machines of `per_node` resources, instances are packed onto whole machines, and the joint
// search for low node affinity runs too (DistServe's Algorithm 2): a machine holds prefill and
// decode instances together and moves KV only inside itself (the profile's transfer); machines
// are then replicated. `cross_node_bytes_per_us` is the KV rate between machines that the
// separate-machine deployments pay; a slow one is what makes the joint placement win.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "sim/simulator.h"

namespace tandem {

struct InstanceKind {
  int32_t size = 1;  // resources per instance: cores (threads) or GPUs (tensor-parallel degree)
  LatencyProfile profile;
};

struct PlanOptions {
  std::vector<InstanceKind> kinds;  // one profile per instance size
  // Lengths and SLOs; arrivals are made per rate (Poisson), the workload cycled so that a run
  // lasts four settling times (TTFT target + mean output x TPOT target) at its rate, with
  // attainment counted in the steady state between the first and the last settling time.
  std::vector<SimRequest> workload;
  int64_t max_requests = 100000;  // a run's requests at most (the workload's size at least)
  double ttft_ms = 0;             // the targets every request is held to
  double tpot_ms = 0;
  double attainment = 0.9;
  int32_t resources = 0;  // budget (cores or GPUs); 0: none (then `rate` sizes the plan)
  int32_t per_node = 0;   // resources per machine; > 0: whole machines, and the joint search
  // KV transfer rate between machines (bytes/us); 0: the profile's transfer wherever instances sit.
  double cross_node_bytes_per_us = 0;
  double rate = 0;          // > 0: provision for this many requests/s
  SimOptions node;          // node knobs (budgets, KV pool); counts and profile are set per run
  double tolerance = 0.03;  // bisection stops at this relative width
  int threads = 0;          // parallel simulations (0: the cores)
  uint64_t seed = 1;
};

// The highest rate (requests/s) one deployment serves at the goal, by phase or jointly.
struct PhaseRate {
  int32_t size = 0;
  double rate = 0;  // per instance
  double per_resource() const { return size > 0 ? rate / size : 0; }
};

struct Deployment {
  std::string name;  // "2x4P + 3x2D", "6x2 colocated", "4 machines x (1x2P + 3x2D)"
  int32_t prefill_size = 0, num_prefill = 0, decode_size = 0, num_decode = 0;
  int32_t colocated_size = 0, num_colocated = 0;
  // Joint placement: `machines` machines each holding num_prefill / machines prefill and
  // num_decode / machines decode instances, KV moving only inside a machine.
  bool joint = false;
  int32_t machines = 0;  // with per_node: the machines it occupies
  int32_t resources = 0;
  double predicted_rate = 0;       // from the phases alone: min over phases of count x per-instance rate
  double goodput = 0;              // simulated whole: the highest rate meeting the goal
  double attainment_at_rate = -1;  // with PlanOptions::rate: joint attainment there
  std::vector<std::pair<double, double>> samples;  // (rate, attainment) simulated whole, by rate
  double per_resource() const { return resources > 0 ? goodput / resources : 0; }
};

struct Plan {
  std::vector<PhaseRate> prefill, decode, colocated;  // one per instance size
  // Decode alone with the KV moving inside a machine (the joint search's; with no
  // cross-node rate, the same as `decode`).
  std::vector<PhaseRate> decode_in_machine;
  std::vector<Deployment> ranked;  // best first (goodput per resource)
  int64_t simulations = 0;
  bool capped = false;  // some run wanted more than max_requests: its steady state is shorter
};

// InvalidArgument for no instance kinds, no targets, a goal outside (0, 1], neither a budget nor
// a rate, or a budget smaller than one machine; the simulator's errors otherwise.
Result<Plan> MakePlan(const PlanOptions& options);

// Joint SLO attainment (share of all requests finishing normally within both targets).
double JointAttainment(const SimResult& r, double ttft_ms, double tpot_ms);

}  // namespace tandem
