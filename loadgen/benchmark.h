// One `tandem bench` invocation as a library call: a workload and a schedule in, runs out,
// printed and saved. apps/cmd_bench.cc parses the flags into BenchConfig; tests call it too.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "common/status.h"
#include "loadgen/arrivals.h"
#include "loadgen/bench_runner.h"
#include "loadgen/metrics.h"
#include "loadgen/report.h"
#include "loadgen/sweep.h"
#include "loadgen/workload.h"

namespace tandem::loadgen {

struct BenchConfig {
  RunInfo info;  // echoed in the outputs (request_rate: the first rate); chooses the reported percentiles
  RunOptions run;
  ArrivalOptions arrivals;  // rate and burstiness come from here
  SloPolicy slo;
  int64_t warmup_requests = 0;
  std::string sweep;  // "", "rate" or "slo-scale"
  SweepOptions sweep_options;
  bool progress = false;  // a live line on stderr
  std::string save_json;  // "" = do not save
  std::string save_csv;
  bool include_texts = false;
  // Each run (the warm-up, every sweep point) sends its own cache_salt, "<isolate_prefix_cache>-<run>",
  // so no run is served from prefixes an earlier one left in the server's cache; "" = off.
  std::string isolate_prefix_cache;
};

struct BenchOutcome {
  Summary summary;  // the single run, or the sweep's best point
  std::vector<RequestResult> results;
  SweepResult sweep;  // with --sweep
};

// Runs what `config` asks against the server, printing the table(s) to `out`. Errors are
// setup errors only (unreachable server, a bad file); request failures are counted.
Result<BenchOutcome> RunBench(const Workload& workload, const BenchConfig& config, std::ostream& out);

// When each request goes out: a trace's own times (rescaled when a finite rate is given), or
// generated arrivals.
Result<std::vector<double>> ScheduleFor(const Workload& workload, const ArrivalOptions& arrivals);

}  // namespace tandem::loadgen
