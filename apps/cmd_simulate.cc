// `tandem simulate`: a deployment on a virtual clock (sim/simulator.h). The same workload and
// arrival flags as `tandem bench`, the same placement, admission and node flags as `tandem
// serve` / `tandem worker`, a latency profile from `tandem profile`; out come the same table and
// result JSON as `tandem bench` (so `tandem bench plot` draws simulated and measured runs side by
// side), in a fraction of the time.
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/http_options.h"
#include "apps/workload_flags.h"
#include "loadgen/benchmark.h"
#include "loadgen/report.h"
#include "loadgen/workload.h"
#include "sim/sim_requests.h"
#include "sim/simulator.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

struct SimulateArgs {
  std::string profile;
  WorkloadFlags workload;
  int num_prefill = 1, num_decode = 1, num_colocated = 0;
  PlacementFlags placement;
  std::string slo_config;
  std::vector<std::string> goodput;
  int32_t kv_blocks = 0;
  double prefill_scale = 1.0, decode_scale = 1.0;
  double kv_cache_gib = 0;
  int32_t max_num_batched_tokens = 0;  // 0: the role's default
  int32_t max_num_seqs = 0;
  std::string kv_allocation = "grow", prefill_queue = "edf";
  int32_t max_queued = 1024;
  double first_token_timeout_s = 60, inter_token_timeout_s = 60;
  std::string label, result_filename;
  bool save_result = false;
};

Status RunSimulate(const SimulateArgs& a) {
  SimOptions o;
  ASSIGN_OR_RETURN(o.profile, LoadLatencyProfile(a.profile));
  if (a.num_colocated < 0 || a.num_prefill < 0 || a.num_decode < 0) {
    return InvalidArgumentError("node counts must not be negative");
  }
  o.num_prefill = a.num_prefill;
  o.num_decode = a.num_decode;
  o.num_colocated = a.num_colocated;
  if (o.num_colocated == 0 && o.profile.transfer.empty()) {
    std::cerr << "warning: the profile has no KV transfer phase: transfers are simulated as free" << std::endl;
  }
  o.kv_blocks = a.kv_blocks;
  o.prefill_scale = a.prefill_scale;
  o.decode_scale = a.decode_scale;
  o.kv_cache_gib = a.kv_cache_gib;
  if (a.max_num_batched_tokens > 0) {
    o.prefill_max_num_batched_tokens = o.colocated_max_num_batched_tokens = a.max_num_batched_tokens;
  }
  if (a.max_num_seqs > 0) o.decode_max_num_seqs = o.colocated_max_num_seqs = a.max_num_seqs;
  o.kv_allocation = a.kv_allocation == "reserve" ? KvAllocation::kReserve : KvAllocation::kGrow;
  o.prefill_queue = a.prefill_queue == "fcfs" ? QueueOrder::kArrival : QueueOrder::kDeadline;
  o.decode_tpot_admission = a.placement.policy == "slo";
  o.router.max_queued = a.max_queued;
  o.router.first_token_timeout_us = static_cast<int64_t>(a.first_token_timeout_s * 1e6);
  o.router.inter_token_timeout_us = static_cast<int64_t>(a.inter_token_timeout_s * 1e6);
  PlacementFlags placement = a.placement;
  if (placement.policy == "slo" && placement.latency_profile.empty()) placement.latency_profile = a.profile;
  ASSIGN_OR_RETURN(std::unique_ptr<PlacementPolicy> policy, MakePlacementPolicy(placement));

  if (a.workload.num_prompts < 1) return InvalidArgumentError("--num-prompts must be at least 1");
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, a.workload.LoadTokenizer());
  ASSIGN_OR_RETURN(loadgen::Workload workload, loadgen::LoadWorkload(a.workload.Options(tokenizer.get())));
  ASSIGN_OR_RETURN(const double rate, a.workload.Rate());
  loadgen::ArrivalOptions arrivals;
  arrivals.rate = rate;
  arrivals.burstiness = a.workload.burstiness;
  arrivals.seed = a.workload.seed;
  ASSIGN_OR_RETURN(std::vector<double> send_s, loadgen::ScheduleFor(workload, arrivals));

  std::unique_ptr<SloConfig> classes;
  if (!a.slo_config.empty()) {
    ASSIGN_OR_RETURN(SloConfig c, SloConfig::FromFile(a.slo_config));
    classes = std::make_unique<SloConfig>(std::move(c));
  }
  ASSIGN_OR_RETURN(std::vector<SimRequest> requests, SimRequestsFor(workload, send_s, classes.get()));
  ASSIGN_OR_RETURN(loadgen::SloTargets fallback, loadgen::SloTargets::Parse(a.goodput));
  loadgen::SloPolicy slo;
  slo.fallback = fallback;
  if (!a.slo_config.empty()) {
    ASSIGN_OR_RETURN(slo, loadgen::SloPolicy::FromConfigFile(a.slo_config, fallback));
  }

  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(SimResult sim, Simulate(o, std::move(policy), requests));
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double duration_s = 0;
  std::vector<loadgen::RequestResult> results = ResultsOf(sim, requests, workload, &duration_s);

  loadgen::RunInfo info;
  info.label = a.label.empty()
                   ? (o.num_colocated > 0
                          ? std::to_string(o.num_colocated) + "x colocated (simulated)"
                          : std::to_string(o.num_prefill) + "P+" + std::to_string(o.num_decode) + "D (simulated)")
                   : a.label;
  info.backend = "tandem-simulate";
  info.base_url = "simulated";
  info.endpoint = "/v1/completions";
  info.model_id = o.profile.model;
  info.dataset_name = a.workload.DatasetLabel();
  info.num_prompts = static_cast<int64_t>(results.size());
  info.request_rate = rate;
  info.burstiness = a.workload.burstiness;
  info.goodput = a.goodput;
  info.resources = o.num_colocated > 0 ? o.num_colocated : o.num_prefill + o.num_decode;
  const loadgen::Summary summary = loadgen::Summarize(results, duration_s, info.metric_percentiles, slo);
  loadgen::PrintTable(std::cout, info, summary);
  std::cerr << "simulated " << results.size() << " requests (" << sim.steps << " engine steps, " << sim.events
            << " events) in " << wall_s << " s" << std::endl;
  if (a.save_result || !a.result_filename.empty()) {
    const std::string path = a.result_filename.empty() ? "tandem-simulate.json" : a.result_filename;
    std::ofstream out(path);
    out << loadgen::ResultJson(info, summary, results, false).dump(2) << "\n";
    if (!out) return UnavailableError("cannot write " + path);
    std::cerr << "result: " << path << std::endl;
  }
  return Status::Ok();
}

std::pair<CLI::App*, CommandRunner> SetupSimulate(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "simulate",
      "simulate a deployment on a virtual clock: the real router and schedulers, steps from a latency profile");
  auto a = std::make_shared<SimulateArgs>();
  cmd->add_option("--profile", a->profile, "latency profile (tandem profile --out)")
      ->required()
      ->check(CLI::ExistingFile);
  AddWorkloadOptions(*cmd, a->workload);
  cmd->add_option("--prefill", a->num_prefill, "prefill nodes")->capture_default_str()->check(CLI::Range(0, 4096));
  cmd->add_option("--decode", a->num_decode, "decode nodes")->capture_default_str()->check(CLI::Range(0, 4096));
  cmd->add_option("--colocated", a->num_colocated, "colocated workers instead of prefill and decode nodes")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--policy", a->placement.policy, "least-loaded or slo (predicted TTFT/TPOT on the profile)")
      ->capture_default_str();
  cmd->add_option("--admission", a->placement.admission, "queue or slo (429 slo_unattainable at once)")
      ->capture_default_str();
  cmd->add_option("--slo-config", a->slo_config, "SLO classes (the router's file): targets the router knows")
      ->check(CLI::ExistingFile);
  cmd->add_option("--goodput", a->goodput, "SLO targets to score: ttft:MS tpot:MS e2el:MS");
  cmd->add_option("--kv-blocks", a->kv_blocks, "KV blocks per node (default: from --kv-cache-gib)");
  cmd->add_option("--prefill-scale", a->prefill_scale,
                  "prefill takes this many times the profile's time (a loaded machine's measured / predicted)")
      ->capture_default_str();
  cmd->add_option("--decode-scale", a->decode_scale, "decode steps take this many times the profile's time")
      ->capture_default_str();
  cmd->add_option("--kv-cache-gib", a->kv_cache_gib, "KV pool per node in GiB (default: the profile's, else 1)");
  cmd->add_option("--max-num-batched-tokens", a->max_num_batched_tokens,
                  "prefill nodes' / workers' token budget per step (default 2048)");
  cmd->add_option("--max-num-seqs", a->max_num_seqs, "decode nodes' / workers' sequences per step (default 64)");
  cmd->add_option("--kv-allocation", a->kv_allocation, "grow or reserve")
      ->check(CLI::IsMember({"grow", "reserve"}))
      ->capture_default_str();
  cmd->add_option("--prefill-queue", a->prefill_queue, "edf or fcfs")->check(CLI::IsMember({"edf", "fcfs"}));
  cmd->add_option("--max-queued-requests", a->max_queued, "the router's queue")->capture_default_str();
  cmd->add_option("--first-token-timeout-s", a->first_token_timeout_s)->capture_default_str();
  cmd->add_option("--inter-token-timeout-s", a->inter_token_timeout_s)->capture_default_str();
  cmd->add_option("--label", a->label, "name of this setup in plots");
  cmd->add_flag("--save-result", a->save_result, "write the result JSON (tandem bench's format)");
  cmd->add_option("--result-filename", a->result_filename, "where (default tandem-simulate.json)");
  return {cmd, [a] {
            Status s = RunSimulate(*a);
            return s.ok() ? 0 : ReportError(s);
          }};
}

TANDEM_REGISTER_COMMAND(SetupSimulate);

}  // namespace
}  // namespace tandem
