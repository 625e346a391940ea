// `tandem plan`: how many prefill and decode instances, of which size, for this traffic and these
// SLOs (sim/planner.h: DistServe's search on our simulator). Profiles give the instance sizes:
// `--profile SIZE=FILE` per size (threads per instance on CPU, GPUs per instance on GPU), or
// `--profile FILE` (its size: the profile's threads for cores, 1 for a GPU).
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/workload_flags.h"
#include "loadgen/plot.h"
#include "sim/planner.h"
#include "sim/sim_requests.h"

namespace tandem {
namespace {

struct PlanArgs {
  std::vector<std::string> profiles;
  WorkloadFlags workload;
  std::string slo;
  double attainment = 90;
  int32_t resources = 0;
  std::string resource_kind = "core";
  double rate = 0;
  int32_t kv_blocks = 0;
  int64_t max_requests = 100000;
  double kv_cache_gib = 0;
  int32_t max_num_batched_tokens = 0, max_num_seqs = 0;
  int threads = 0;
  int32_t per_node = 0;
  double cross_node_gbps = 0;
  std::string plot;
};

// Goodput per resource of every deployment simulated whole, and the attainment each reached at
// the rates its bisection tried (the goal as a dashed line).
Status PlotPlan(const Plan& plan, const PlanOptions& o, const char* unit, const std::string& path) {
  loadgen::Panel curves{"attainment of each deployment simulated whole", "rate (req/s)", "SLO attainment (%)", {}};
  curves.goal_y = 100 * o.attainment;
  curves.y_min = 0;
  curves.y_max = 100;
  curves.x_log = true;
  loadgen::Panel bars{"goodput per " + std::string(unit) + ", best first",
                      "deployment (rank)",
                      "goodput per " + std::string(unit) + " (req/s)",
                      {}};
  loadgen::Curve simulated{"simulated whole", {}, true, false, ""};
  loadgen::Curve predicted{"predicted from the phases", {}, true, false, ""};
  for (size_t i = 0; i < plan.ranked.size(); ++i) {
    const Deployment& d = plan.ranked[i];
    loadgen::Curve c{std::to_string(i + 1) + ": " + d.name, {}, true, false, ""};
    for (const auto& [rate, attainment] : d.samples) {
      if (rate > 0) c.points.emplace_back(rate, 100 * attainment);
    }
    curves.curves.push_back(std::move(c));
    simulated.points.emplace_back(static_cast<double>(i + 1), d.per_resource());
    predicted.points.emplace_back(static_cast<double>(i + 1), d.resources > 0 ? d.predicted_rate / d.resources : 0);
  }
  bars.curves = {simulated, predicted};
  return loadgen::RenderPanels({bars, curves}, path);
}

// "ttft:250,tpot:50" (also space-separated, as --goodput).
Status ParseSlo(const std::string& text, double* ttft, double* tpot) {
  std::string s = text;
  for (char& c : s) {
    if (c == ',') c = ' ';
  }
  std::istringstream in(s);
  std::string pair;
  while (in >> pair) {
    const size_t colon = pair.find(':');
    double v = 0;
    try {
      v = colon == std::string::npos ? -1 : std::stod(pair.substr(colon + 1));
    } catch (const std::exception&) {
      v = -1;
    }
    const std::string key = pair.substr(0, colon);
    if (!(v > 0) || (key != "ttft" && key != "tpot")) {
      return InvalidArgumentError("--slo '" + pair + "': expected ttft:MS or tpot:MS with a positive number");
    }
    (key == "ttft" ? *ttft : *tpot) = v;
  }
  if (*ttft <= 0 && *tpot <= 0) return InvalidArgumentError("--slo: give ttft:MS and/or tpot:MS");
  return Status::Ok();
}

Result<InstanceKind> ParseProfileArg(const std::string& arg, const std::string& kind) {
  InstanceKind k;
  std::string path = arg;
  const size_t eq = arg.find('=');
  if (eq != std::string::npos) {
    try {
      k.size = std::stoi(arg.substr(0, eq));
    } catch (const std::exception&) {
      k.size = 0;
    }
    if (k.size < 1) return InvalidArgumentError("--profile '" + arg + "': SIZE=FILE with SIZE >= 1");
    path = arg.substr(eq + 1);
  }
  ASSIGN_OR_RETURN(k.profile, LoadLatencyProfile(path));
  if (eq == std::string::npos) k.size = kind == "core" ? std::max(1, k.profile.threads) : 1;
  return k;
}

Status RunPlan(const PlanArgs& a) {
  PlanOptions o;
  if (a.profiles.empty()) return InvalidArgumentError("give at least one --profile");
  for (const std::string& p : a.profiles) {
    ASSIGN_OR_RETURN(InstanceKind k, ParseProfileArg(p, a.resource_kind));
    for (const InstanceKind& other : o.kinds) {
      if (other.size == k.size)
        return InvalidArgumentError("two profiles for instances of size " + std::to_string(k.size));
    }
    o.kinds.push_back(std::move(k));
  }
  RETURN_IF_ERROR(ParseSlo(a.slo, &o.ttft_ms, &o.tpot_ms));
  o.attainment = a.attainment / 100.0;
  o.resources = a.resources;
  o.per_node = a.per_node;
  o.cross_node_bytes_per_us = a.cross_node_gbps * 1e3;  // GB/s = 10^3 bytes/us
  o.rate = a.rate;
  o.threads = a.threads;
  o.seed = a.workload.seed;
  o.node.kv_blocks = a.kv_blocks;
  o.node.kv_cache_gib = a.kv_cache_gib;
  o.max_requests = a.max_requests;
  if (a.max_num_batched_tokens > 0) {
    o.node.prefill_max_num_batched_tokens = o.node.colocated_max_num_batched_tokens = a.max_num_batched_tokens;
  }
  if (a.max_num_seqs > 0) o.node.decode_max_num_seqs = o.node.colocated_max_num_seqs = a.max_num_seqs;
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, a.workload.LoadTokenizer());
  ASSIGN_OR_RETURN(loadgen::Workload workload, loadgen::LoadWorkload(a.workload.Options(tokenizer.get())));
  ASSIGN_OR_RETURN(o.workload, SimRequestsFor(workload, std::vector<double>(workload.requests.size(), 0.0), nullptr));

  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(Plan plan, MakePlan(o));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const char* unit = a.resource_kind == "gpu" ? "GPU" : "core";
  std::printf("SLO: TTFT %.0f ms, TPOT %.0f ms, %.0f%% attainment; %zu requests of %s\n\n", o.ttft_ms, o.tpot_ms,
              a.attainment, o.workload.size(), a.workload.DatasetLabel().c_str());
  std::printf("one instance, one phase at a time (req/s at the goal):\n");
  const std::string per = " (per " + std::string(unit) + ")";
  std::printf("  %-6s %-22s %-22s %-22s\n", "size", ("prefill" + per).c_str(), ("decode" + per).c_str(),
              ("colocated" + per).c_str());
  for (size_t i = 0; i < o.kinds.size(); ++i) {
    std::printf("  %-6d %7.3f (%7.3f)      %7.3f (%7.3f)      %7.3f (%7.3f)\n", o.kinds[i].size, plan.prefill[i].rate,
                plan.prefill[i].per_resource(), plan.decode[i].rate, plan.decode[i].per_resource(),
                plan.colocated[i].rate, plan.colocated[i].per_resource());
  }
  std::printf("\ndeployments simulated whole (best first):\n");
  std::printf("  %-34s %9s %14s %13s %16s", "deployment", "resources", "predicted req/s", "goodput req/s",
              ("per " + std::string(unit)).c_str());
  if (o.rate > 0) std::printf(" %18s", ("attainment @ " + std::to_string(o.rate).substr(0, 5)).c_str());
  std::printf("\n");
  for (const Deployment& d : plan.ranked) {
    std::printf("  %-34s %9d %14.3f %13.3f %16.4f", d.name.c_str(), d.resources, d.predicted_rate, d.goodput,
                d.per_resource());
    if (o.rate > 0) std::printf(" %17.1f%%", 100 * d.attainment_at_rate);
    std::printf("\n");
  }
  if (!plan.ranked.empty()) {
    const Deployment& best = plan.ranked.front();
    if (o.rate > 0) {
      std::printf("\nfor %.3f req/s: %s (%d %ss), %.1f%% attainment simulated there\n", o.rate, best.name.c_str(),
                  best.resources, unit, 100 * best.attainment_at_rate);
    } else {
      std::printf("\nbest for %d %ss: %s, goodput %.3f req/s (%.4f per %s)\n", o.resources, unit, best.name.c_str(),
                  best.goodput, best.per_resource(), unit);
    }
  }
  if (plan.capped) {
    std::printf(
        "note: some runs were cut at --max-requests %lld; their steady state lasted less than four "
        "settling times\n",
        static_cast<long long>(o.max_requests));
  }
  if (a.per_node > 0 && a.cross_node_gbps > 0) {
    std::printf("\ndecode alone with the KV inside a machine (joint placement), req/s per instance:");
    for (size_t i = 0; i < o.kinds.size(); ++i) {
      std::printf(" size %d: %.3f;", o.kinds[i].size, plan.decode_in_machine[i].rate);
    }
    std::printf("\n");
  }
  if (!a.plot.empty()) {
    RETURN_IF_ERROR(PlotPlan(plan, o, unit, a.plot));
    std::printf("plot: %s\n", a.plot.c_str());
  }
  std::fprintf(stderr, "%lld simulations in %.1f s\n", static_cast<long long>(plan.simulations), secs);
  return Status::Ok();
}

std::pair<CLI::App*, CommandRunner> SetupPlan(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("plan", "capacity planning: the best prefill/decode deployment for a workload and SLO");
  auto a = std::make_shared<PlanArgs>();
  a->workload.num_prompts = 500;
  cmd->add_option("--profile", a->profiles, "SIZE=FILE or FILE: a latency profile per instance size (repeatable)")
      ->required();
  AddWorkloadOptions(*cmd, a->workload);
  cmd->add_option("--slo", a->slo, "targets: ttft:MS,tpot:MS")->required();
  cmd->add_option("--attainment", a->attainment, "goal, percent of requests meeting both targets")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100.0));
  cmd->add_option("--resources", a->resources, "the budget: cores or GPUs in all");
  cmd->add_option("--resource-kind", a->resource_kind, "core or gpu")
      ->check(CLI::IsMember({"core", "gpu"}))
      ->capture_default_str();
  cmd->add_option("--rate", a->rate, "provision for this many requests/s instead of a budget");
  cmd->add_option("--max-requests", a->max_requests,
                  "Requests per simulated run at most (runs are sized to four settling times at their rate)")
      ->capture_default_str();
  cmd->add_option("--kv-blocks", a->kv_blocks, "KV blocks per instance (default: from --kv-cache-gib)");
  cmd->add_option("--kv-cache-gib", a->kv_cache_gib, "KV pool per instance in GiB (default: the profile's, else 1)");
  cmd->add_option("--max-num-batched-tokens", a->max_num_batched_tokens, "prefill / colocated token budget per step");
  cmd->add_option("--max-num-seqs", a->max_num_seqs, "decode / colocated sequences per step");
  cmd->add_option("--threads", a->threads, "parallel simulations (0: the cores)");
  cmd->add_option("--per-node", a->per_node,
                  "resources per machine: instances fill whole machines, and machines holding both prefill and "
                  "decode instances (KV moving inside the machine) are searched too (DistServe's low-affinity "
                  "placement)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--cross-node-bw", a->cross_node_gbps,
                  "GB/s of KV transfer between machines (with --per-node; default: the profile's transfer "
                  "everywhere)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--plot", a->plot, "draw goodput per resource and attainment vs rate of each deployment (.png/.svg)");
  return {cmd, [a] {
            Status s = RunPlan(*a);
            return s.ok() ? 0 : ReportError(s);
          }};
}

TANDEM_REGISTER_COMMAND(SetupPlan);

}  // namespace
}  // namespace tandem
