// The benchmark client's own precision: `tandem bench`'s send lag (actual - scheduled send time)
// against a server on 127.0.0.1 that answers at once (tests/loadgen/scripted_server.h), at
// rising Poisson rates. The goal is p99 lag under 1 ms at 1,000 requests/s; above the rate where
// lag grows, the client (not the server) would be the bottleneck of a measurement.
//   build/bin/loadgen_lag_bench [--seconds 5] [--rates 250,1000,2000,4000] [--tokens 4]
#include <CLI/CLI.hpp>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "loadgen/arrivals.h"
#include "loadgen/bench_runner.h"
#include "loadgen/metrics.h"
#include "tests/loadgen/scripted_server.h"

int main(int argc, char** argv) {
  using namespace tandem::loadgen;  // NOLINT
  CLI::App app{"send lag of the tandem bench client against an instant server"};
  double seconds = 5;
  std::string rates_text = "250,1000,2000,4000";
  int tokens = 4;
  app.add_option("--seconds", seconds, "length of each run")->capture_default_str();
  app.add_option("--rates", rates_text, "requests/s, comma-separated")->capture_default_str();
  app.add_option("--tokens", tokens, "chunks per response")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::vector<double> rates;
  std::stringstream in(rates_text);
  for (std::string item; std::getline(in, item, ',');) rates.push_back(std::stod(item));

  tandem::testing::ScriptedServer server;
  std::cout << "instant server on 127.0.0.1:" << server.port() << " (same machine: it shares the cores)\n";
  std::cout << std::setw(10) << "rate/s" << std::setw(10) << "requests" << std::setw(10) << "failed" << std::setw(14)
            << "lag p50 ms" << std::setw(14) << "lag p99 ms" << std::setw(14) << "lag max ms" << std::setw(12)
            << "p99/1ms" << std::setw(14) << "achieved/s"
            << "\n";
  for (double rate : rates) {
    const auto n = static_cast<int64_t>(rate * seconds);
    BenchRequest req;
    req.prompt_text = "ok";
    req.output_len = tokens;
    std::vector<BenchRequest> requests(static_cast<size_t>(n), req);
    ArrivalOptions a;
    a.rate = rate;
    a.seed = 1;
    auto schedule = ArrivalSchedule(n, a);
    RunOptions o;
    o.endpoint.port = server.port();
    o.model = "scripted";
    o.request_timeout_s = 30;
    auto run = RunBenchmark(requests, *schedule, o);
    if (!run.ok()) {
      std::cerr << run.status().ToString() << "\n";
      return 1;
    }
    const Summary s = Summarize(run->results, run->duration_s, {99}, SloPolicy{});
    const double p99 = s.send_lag.percentiles_ms[1].second;
    std::cout << std::fixed << std::setprecision(3) << std::setw(10) << rate << std::setw(10) << n << std::setw(10)
              << s.failed << std::setw(14) << s.send_lag.median_ms << std::setw(14) << p99 << std::setw(14)
              << s.send_lag.percentiles_ms[2].second << std::setw(12) << p99 / 1.0 << std::setw(14)
              << s.request_throughput << "\n";
  }
  return 0;
}
