#include "loadgen/benchmark.h"

#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "common/file_io.h"

namespace tandem::loadgen {

namespace {

struct OneRun {
  RunResult run;
  Summary summary;
  double rate = 0;
};

// "\r[bench] sent 120/500  done 100  failed 0  in flight 20  attainment 97.0%" on stderr.
std::function<void(int64_t, int64_t, int64_t, const std::vector<RequestResult>&)> ProgressLine(int64_t total,
                                                                                               const SloPolicy& slo) {
  return [total, &slo](int64_t sent, int64_t done, int64_t failed, const std::vector<RequestResult>& results) {
    std::ostringstream line;
    line << "\r[bench] sent " << sent << "/" << total << "  done " << done << "  failed " << failed << "  in flight "
         << (sent - done);
    if (!slo.empty() && done > 0) {
      int64_t ended = 0, met = 0;
      for (const RequestResult& r : results) {
        if (r.done_s < 0) continue;
        ++ended;
        met += CheckSlo(r, slo.For(r.slo_class)).all();
      }
      if (ended > 0) line << "  attainment " << std::fixed << std::setprecision(1) << 100.0 * met / ended << "%";
    }
    line << "   ";
    if (done == total) line << "\n";
    std::fputs(line.str().c_str(), stderr);
    std::fflush(stderr);
  };
}

// The options of the `run`-th run (0: the warm-up): its own cache salt when runs are isolated.
RunOptions OptionsForRun(const BenchConfig& c, int run) {
  RunOptions o = c.run;
  if (!c.isolate_prefix_cache.empty()) o.extra_body["cache_salt"] = c.isolate_prefix_cache + "-" + std::to_string(run);
  return o;
}

Result<OneRun> RunAt(const Workload& w, const BenchConfig& c, double rate, int run_index) {
  ArrivalOptions a = c.arrivals;
  a.rate = rate;
  auto schedule = ScheduleFor(w, a);
  if (!schedule.ok()) return schedule.status();
  RunOptions o = OptionsForRun(c, run_index);
  if (c.progress) o.on_progress = ProgressLine(static_cast<int64_t>(w.requests.size()), c.slo);
  auto run = RunBenchmark(w.requests, *schedule, o);
  if (!run.ok()) return run.status();
  OneRun one;
  one.rate = rate;
  one.summary = Summarize(run->results, run->duration_s, c.info.metric_percentiles, c.slo);
  one.run = std::move(*run);
  return one;
}

SloPolicy ScaledPolicy(const SloPolicy& p, double factor) {
  SloPolicy s;
  s.fallback = p.fallback.Scaled(factor);
  for (const auto& [name, t] : p.classes) s.classes[name] = t.Scaled(factor);
  return s;
}

// A sweep point's summary: the result JSON without its per-request lists.
nlohmann::ordered_json PointJson(const RunInfo& info, const OneRun& r) {
  nlohmann::ordered_json j = ResultJson(info, r.summary, {}, false);
  for (const char* key : {"input_lens", "output_lens", "ttfts", "itls", "errors", "requests"}) j.erase(key);
  return j;
}

void PointLine(std::ostream& out, const char* what, double x, const Summary& s) {
  out << std::fixed << std::setprecision(3) << what << " " << x << ": attainment " << std::setprecision(1)
      << 100 * (s.attainment ? s.attainment->joint : 0) << "%  goodput " << std::setprecision(3)
      << s.request_goodput.value_or(0) << " req/s  throughput " << s.request_throughput << " req/s  TTFT p50 "
      << std::setprecision(1) << s.ttft.median_ms << " ms  TPOT p50 " << s.tpot.median_ms << " ms  failed " << s.failed
      << "\n";
}

Status SaveOutputs(const BenchConfig& c, const nlohmann::ordered_json& json, const std::vector<RequestResult>& results,
                   std::ostream& out) {
  if (!c.save_json.empty()) {
    if (auto st = WriteTextFile(c.save_json, json.dump(2) + "\n"); !st.ok()) return st;
    out << "result: " << c.save_json << "\n";
  }
  if (!c.save_csv.empty()) {
    std::ostringstream csv;
    WriteCsv(csv, results);
    if (auto st = WriteTextFile(c.save_csv, csv.str()); !st.ok()) return st;
    out << "per-request CSV: " << c.save_csv << "\n";
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<double>> ScheduleFor(const Workload& w, const ArrivalOptions& a) {
  if (w.timed && a.ramp_up == RampUp::kNone) {
    std::vector<double> ts;
    ts.reserve(w.requests.size());
    for (const BenchRequest& r : w.requests) ts.push_back(r.timestamp_ms);
    return ScheduleFromTimestamps(ts, a.rate);
  }
  return ArrivalSchedule(static_cast<int64_t>(w.requests.size()), a);
}

Result<BenchOutcome> RunBench(const Workload& w, const BenchConfig& c, std::ostream& out) {
  if (!c.sweep.empty() && c.slo.empty()) {
    return InvalidArgumentError("--sweep needs SLO targets: give --goodput (e.g. ttft:2000 tpot:50) or --slo-config");
  }
  if (!c.sweep.empty() && c.sweep != "rate" && c.sweep != "slo-scale") {
    return InvalidArgumentError("--sweep '" + c.sweep + "': expected rate or slo-scale");
  }
  if (c.warmup_requests > 0) {
    const size_t n = std::min(static_cast<size_t>(c.warmup_requests), w.requests.size());
    std::vector<BenchRequest> warm(w.requests.begin(), w.requests.begin() + static_cast<std::ptrdiff_t>(n));
    auto run = RunBenchmark(warm, std::vector<double>(n, 0.0), OptionsForRun(c, 0));
    if (!run.ok()) return run.status();
    int64_t failed = 0;
    for (const RequestResult& r : run->results) failed += !r.success;
    out << "warmup: " << n << " requests, " << failed << " failed\n";
  }
  BenchOutcome outcome;
  RunInfo info = c.info;
  if (c.sweep.empty()) {
    auto one = RunAt(w, c, c.arrivals.rate, 1);
    if (!one.ok()) return one.status();
    PrintTable(out, info, one->summary);
    if (auto st =
            SaveOutputs(c, ResultJson(info, one->summary, one->run.results, c.include_texts), one->run.results, out);
        !st.ok()) {
      return st;
    }
    outcome.summary = one->summary;
    outcome.results = std::move(one->run.results);
    return outcome;
  }

  nlohmann::ordered_json sweep_json;
  sweep_json["sweep"] = c.sweep;
  sweep_json["label"] = info.label;
  sweep_json["attainment_goal"] = c.sweep_options.goal;
  if (c.sweep == "rate") {
    std::vector<OneRun> runs;
    auto measure = [&](double rate) -> Result<double> {
      auto one = RunAt(w, c, rate, static_cast<int>(runs.size()) + 1);
      if (!one.ok()) return one.status();
      PointLine(out, "rate", rate, one->summary);
      runs.push_back(std::move(*one));
      return runs.back().summary.attainment ? runs.back().summary.attainment->joint : 0.0;
    };
    SweepOptions so = c.sweep_options;
    so.increasing = false;
    auto sweep = RunSweep(so, measure);
    if (!sweep.ok()) return sweep.status();
    outcome.sweep = *sweep;
    std::sort(runs.begin(), runs.end(), [](const OneRun& a, const OneRun& b) { return a.rate < b.rate; });
    nlohmann::ordered_json points = nlohmann::ordered_json::array(), full = nlohmann::ordered_json::array();
    const OneRun* best = nullptr;
    for (const OneRun& r : runs) {
      RunInfo ri = info;
      ri.request_rate = r.rate;
      points.push_back(PointJson(ri, r));
      full.push_back(ResultJson(ri, r.summary, r.run.results, false));
      if (r.rate == sweep->best) best = &r;
    }
    out << "goodput (highest rate with attainment >= " << 100 * so.goal << "%): ";
    if (sweep->best > 0) {
      out << std::setprecision(3) << sweep->best << " req/s";
      if (info.resources > 0) out << " (" << sweep->best / info.resources << " req/s per resource)";
    } else {
      out << "none of the rates tried met it";
    }
    if (!sweep->bracketed) out << " [not bracketed: widen the search with --request-rate or --sweep-max-points]";
    out << "\n";
    sweep_json["goodput_rate"] = sweep->best;
    if (info.resources > 0) sweep_json["goodput_rate_per_resource"] = sweep->best / info.resources;
    sweep_json["bracketed"] = sweep->bracketed;
    sweep_json["points"] = std::move(points);
    sweep_json["runs"] = std::move(full);
    if (best) {
      RunInfo ri = info;
      ri.request_rate = best->rate;
      PrintTable(out, ri, best->summary);
      outcome.summary = best->summary;
      outcome.results = best->run.results;
    }
    if (auto st = SaveOutputs(c, sweep_json, outcome.results, out); !st.ok()) return st;
    return outcome;
  }

  // slo-scale: the server does not see the targets, so one run answers every scale exactly.
  auto one = RunAt(w, c, c.arrivals.rate, 1);
  if (!one.ok()) return one.status();
  auto measure = [&](double scale) -> Result<double> {
    const Summary s =
        Summarize(one->run.results, one->run.duration_s, c.info.metric_percentiles, ScaledPolicy(c.slo, scale));
    PointLine(out, "slo scale", scale, s);
    return s.attainment ? s.attainment->joint : 0.0;
  };
  SweepOptions so = c.sweep_options;
  so.increasing = true;
  so.start = 1;
  auto sweep = RunSweep(so, measure);
  if (!sweep.ok()) return sweep.status();
  outcome.sweep = *sweep;
  out << "tightest SLO scale with attainment >= " << 100 * so.goal << "%: ";
  if (sweep->best > 0) {
    out << std::setprecision(3) << sweep->best << "\n";
  } else {
    out << "none found\n";
  }
  PrintTable(out, info, one->summary);
  nlohmann::ordered_json points = nlohmann::ordered_json::array();
  for (const SweepPoint& p : sweep->points) points.push_back({{"slo_scale", p.x}, {"slo_attainment", p.attainment}});
  sweep_json["slo_scale"] = sweep->best;
  sweep_json["bracketed"] = sweep->bracketed;
  sweep_json["points"] = std::move(points);
  sweep_json["runs"] = nlohmann::ordered_json::array({ResultJson(info, one->summary, one->run.results, false)});
  outcome.summary = one->summary;
  outcome.results = std::move(one->run.results);
  if (auto st = SaveOutputs(c, sweep_json, outcome.results, out); !st.ok()) return st;
  return outcome;
}

}  // namespace tandem::loadgen
