// `tandem bench`: the goodput benchmark for any OpenAI-compatible server (ours, vLLM, SGLang),
// with `vllm bench serve`'s flag names where they overlap; `tandem bench plot` draws results.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/workload_flags.h"
#include "loadgen/benchmark.h"
#include "loadgen/plot_results.h"
#include "loadgen/rescore.h"
#include "loadgen/synthetic_presets.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

using namespace loadgen;  // NOLINT: this file is the command-line face of loadgen

struct BenchArgs {
  std::string base_url, host = "127.0.0.1", endpoint = "/v1/completions", model;
  int port = 8000;
  WorkloadFlags workload;
  int64_t max_concurrency = 0;
  std::string ramp_up;
  double ramp_up_start = 0, ramp_up_end = 0;
  bool ignore_eos = false;
  std::vector<std::string> goodput;
  std::string slo_config;
  std::string percentile_metrics = "ttft,tpot,itl", metric_percentiles = "99";
  bool save_result = false, save_detailed = false;
  std::string result_dir, result_filename, csv;
  std::string api_key;
  int64_t warmup_requests = 0;
  double request_timeout_s = 600;
  double multi_turn_think_s = 0;
  std::string label, sweep, extra_body;
  double attainment = 90, resources = 0, sweep_tolerance = 0.05, temperature = 0;
  int sweep_max_points = 10;
  bool no_progress = false;
  bool send_slo_class = false;
  bool isolate_prefix_cache = false;
};

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string RateWord(double rate) {
  if (std::isinf(rate)) return "inf";
  std::ostringstream out;
  out << rate;
  return out.str();
}

Status RunBenchCommand(const BenchArgs& a) {
  BenchConfig c;
  ASSIGN_OR_RETURN(c.run.endpoint, ParseEndpoint(a.base_url, a.host, a.port, a.endpoint));
  ASSIGN_OR_RETURN(const double rate, a.workload.Rate());
  c.arrivals.rate = rate;
  c.arrivals.burstiness = a.workload.burstiness;
  c.arrivals.seed = a.workload.seed;
  if (!a.ramp_up.empty()) {
    ASSIGN_OR_RETURN(c.arrivals.ramp_up, ParseRampUp(a.ramp_up));
    c.arrivals.ramp_up_start_rps = a.ramp_up_start;
    c.arrivals.ramp_up_end_rps = a.ramp_up_end;
  }
  if (!(a.request_timeout_s > 0)) return InvalidArgumentError("--request-timeout-s must be positive");
  if (!(a.multi_turn_think_s >= 0)) return InvalidArgumentError("--multi-turn-think-s must be >= 0");
  if (a.workload.num_prompts < 1) return InvalidArgumentError("--num-prompts must be at least 1");

  // Targets: --goodput for everyone, --slo-config classes for requests that name one.
  ASSIGN_OR_RETURN(SloTargets fallback, SloTargets::Parse(a.goodput));
  if (!a.slo_config.empty()) {
    ASSIGN_OR_RETURN(c.slo, SloPolicy::FromConfigFile(a.slo_config, fallback));
  } else {
    c.slo.fallback = fallback;
  }
  for (const std::string& m : SplitComma(a.percentile_metrics)) {
    if (m != "ttft" && m != "tpot" && m != "itl" && m != "e2el") {
      return InvalidArgumentError("--percentile-metrics '" + m + "': expected ttft, tpot, itl or e2el");
    }
  }
  c.info.percentile_metrics = SplitComma(a.percentile_metrics);
  c.info.metric_percentiles.clear();
  for (const std::string& p : SplitComma(a.metric_percentiles)) {
    try {
      size_t used = 0;
      const double v = std::stod(p, &used);
      if (used != p.size() || !(v >= 0 && v <= 100)) throw std::invalid_argument(p);
      c.info.metric_percentiles.push_back(v);
    } catch (const std::exception&) {
      return InvalidArgumentError("--metric-percentiles '" + p + "': numbers in [0, 100]");
    }
  }

  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, a.workload.LoadTokenizer());
  ASSIGN_OR_RETURN(Workload workload, LoadWorkload(a.workload.Options(tokenizer.get())));
  if (c.run.endpoint.chat()) {
    for (BenchRequest& r : workload.requests) {
      if (!r.prompt_text.empty()) continue;
      if (!tokenizer) {
        return InvalidArgumentError("--endpoint " + c.run.endpoint.path + " with --dataset-name " +
                                    a.workload.dataset_name +
                                    " needs --tokenizer (a model folder) to turn token-id prompts into text");
      }
      r.prompt_text = tokenizer->Decode(r.prompt_ids, /*skip_special_tokens=*/true);
    }
  }
  std::cerr << "workload: " << workload.requests.size() << " requests (" << a.workload.DatasetLabel() << ")";
  if (workload.skipped) std::cerr << ", " << workload.skipped << " entries filtered out";
  if (workload.clipped)
    std::cerr << ", " << workload.clipped << " clipped to --max-model-len " << a.workload.max_model_len;
  std::cerr << std::endl;

  c.run.api_key = a.api_key;
  if (c.run.api_key.empty()) {
    if (const char* env = std::getenv("OPENAI_API_KEY")) c.run.api_key = env;
  }
  c.run.ignore_eos = a.ignore_eos;
  c.run.send_slo_class = a.send_slo_class;
  c.run.temperature = a.temperature;
  c.run.max_concurrency = a.max_concurrency;
  c.run.request_timeout_s = a.request_timeout_s;
  c.run.multi_turn_think_s = a.multi_turn_think_s;
  if (!a.extra_body.empty()) {
    c.run.extra_body = nlohmann::json::parse(a.extra_body, nullptr, false);
    if (!c.run.extra_body.is_object()) return InvalidArgumentError("--extra-body must be a JSON object");
  }
  c.run.model = a.model;
  if (c.run.model.empty()) {
    ASSIGN_OR_RETURN(c.run.model, FetchFirstModel(c.run.endpoint, c.run.api_key, 10));
  } else {
    // Fail early and clearly when nothing listens there (a run would count every request failed).
    // A server that answers but lists no model is fine: the given name is used.
    auto reachable = FetchFirstModel(c.run.endpoint, c.run.api_key, 10);
    if (!reachable.ok() && reachable.status().code() == StatusCode::kUnavailable) return reachable.status();
  }

  c.info.label = a.label;
  c.info.base_url = "http://" + c.run.endpoint.host + ":" + std::to_string(c.run.endpoint.port);
  c.info.endpoint = c.run.endpoint.path;
  c.info.model_id = c.run.model;
  c.info.tokenizer_id = a.workload.tokenizer;
  c.info.dataset_name = a.workload.DatasetLabel();
  c.info.num_prompts = static_cast<int64_t>(workload.requests.size());
  c.info.request_rate = rate;
  c.info.burstiness = a.workload.burstiness;
  c.info.max_concurrency = a.max_concurrency;
  c.info.resources = a.resources;
  c.info.goodput = a.goodput;
  c.warmup_requests = a.warmup_requests;
  c.sweep = a.sweep;
  c.sweep_options.goal = a.attainment / 100.0;
  c.sweep_options.tolerance = a.sweep_tolerance;
  c.sweep_options.max_points = a.sweep_max_points;
  c.sweep_options.start = std::isinf(rate) ? 1.0 : rate;
  c.progress = !a.no_progress && ::isatty(STDERR_FILENO);
  c.include_texts = a.save_detailed;
  if (a.isolate_prefix_cache) {
    // Unique to this invocation, so a rerun against the same server does not hit this one's blocks.
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    c.isolate_prefix_cache = "tandem-bench-" + std::to_string(::getpid()) + "-" +
                             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
  }
  if (a.save_result || !a.result_filename.empty() || !a.result_dir.empty()) {
    std::string name = a.result_filename;
    if (name.empty()) {
      std::string model = c.run.model;
      for (char& ch : model) {
        if (ch == '/') ch = '_';
      }
      name = "tandem-bench-" + (a.sweep.empty() ? RateWord(rate) + "qps" : "sweep-" + a.sweep) +
             (a.max_concurrency > 0 ? "-concurrency" + std::to_string(a.max_concurrency) : "") + "-" + model + ".json";
    }
    c.save_json = a.result_dir.empty() ? name : a.result_dir + "/" + name;
  }
  c.save_csv = a.csv;
  auto outcome = RunBench(workload, c, std::cout);
  if (!outcome.ok()) return outcome.status();
  return Status::Ok();
}

struct RescoreArgs {
  std::string in, slo_config, label, out;
  std::vector<std::string> goodput;
};

Status RunRescore(const RescoreArgs& a) {
  ASSIGN_OR_RETURN(SloTargets fallback, SloTargets::Parse(a.goodput));
  SloPolicy slo;
  slo.fallback = fallback;
  if (!a.slo_config.empty()) {
    ASSIGN_OR_RETURN(slo, SloPolicy::FromConfigFile(a.slo_config, fallback));
  }
  if (slo.empty()) return InvalidArgumentError("rescore needs targets: --goodput or --slo-config");
  ASSIGN_OR_RETURN(Summary s, RescoreFile(a.in, slo, a.goodput, a.label, a.out));
  std::cout << "attainment " << 100 * s.attainment->joint << "% (TTFT " << 100 * s.attainment->ttft << "%, TPOT "
            << 100 * s.attainment->tpot << "%), goodput " << s.request_goodput.value_or(0) << " req/s -> " << a.out
            << std::endl;
  return Status::Ok();
}

std::pair<CLI::App*, CommandRunner> SetupBench(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench", "open-loop goodput benchmark of an OpenAI-compatible server (vllm bench serve's flags and metrics)");
  auto args = std::make_shared<BenchArgs>();
  cmd->add_option("--base-url", args->base_url, "http://HOST:PORT[/PREFIX] (overrides --host/--port)");
  cmd->add_option("--host", args->host, "server host")->capture_default_str();
  cmd->add_option("--port", args->port, "server port")->capture_default_str();
  cmd->add_option("--endpoint", args->endpoint, "/v1/completions or /v1/chat/completions")->capture_default_str();
  cmd->add_option("--model", args->model, "model name to send (default: the server's first in /v1/models)");
  AddWorkloadOptions(*cmd, args->workload);
  cmd->add_option("--max-concurrency", args->max_concurrency, "requests in flight at most (0: no limit)");
  cmd->add_option("--ramp-up-strategy", args->ramp_up, "linear|exponential");
  cmd->add_option("--ramp-up-start-rps", args->ramp_up_start, "ramp-up start rate");
  cmd->add_option("--ramp-up-end-rps", args->ramp_up_end, "ramp-up end rate");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "ask the server to ignore EOS (fixed output lengths)");
  cmd->add_option("--temperature", args->temperature)->capture_default_str();
  cmd->add_option("--goodput", args->goodput, "SLO targets: ttft:MS tpot:MS e2el:MS");
  cmd->add_option("--slo-config", args->slo_config, "SLO classes (JSON, the router's format) for classed requests");
  cmd->add_flag("--send-slo-class", args->send_slo_class,
                "send each request's class as X-SLO-Class (the server must define the classes)");
  cmd->add_option("--percentile-metrics", args->percentile_metrics, "of ttft,tpot,itl,e2el")->capture_default_str();
  cmd->add_option("--metric-percentiles", args->metric_percentiles, "e.g. 50,90,99")->capture_default_str();
  cmd->add_flag("--save-result", args->save_result, "write the result JSON");
  cmd->add_flag("--save-detailed", args->save_detailed, "include generated texts in the JSON");
  cmd->add_option("--result-dir", args->result_dir, "folder for the result JSON");
  cmd->add_option("--result-filename", args->result_filename, "name of the result JSON");
  cmd->add_option("--csv", args->csv, "also write the per-request records as CSV here");
  cmd->add_option("--api-key", args->api_key, "bearer token (default: $OPENAI_API_KEY)");
  cmd->add_option("--warmup-requests", args->warmup_requests, "sent all at once first, not counted");
  cmd->add_option("--request-timeout-s", args->request_timeout_s, "a request still open then fails")
      ->capture_default_str();
  cmd->add_option("--multi-turn-think-s", args->multi_turn_think_s,
                  "multi-turn: seconds between an answer and the conversation's next turn")
      ->capture_default_str();
  cmd->add_option("--extra-body", args->extra_body, "JSON object merged into every request body");
  cmd->add_flag("--isolate-prefix-cache", args->isolate_prefix_cache,
                "each run (warm-up, sweep point) sends its own cache_salt: none hits an earlier run's prefixes");
  cmd->add_option("--label", args->label, "name of this setup in plots (e.g. 1P+1D)");
  cmd->add_option("--sweep", args->sweep, "rate: highest rate meeting --attainment; slo-scale: tightest SLO scale");
  cmd->add_option("--attainment", args->attainment, "SLO attainment goal in percent")->capture_default_str();
  cmd->add_option("--sweep-max-points", args->sweep_max_points, "runs a sweep makes at most")->capture_default_str();
  cmd->add_option("--sweep-tolerance", args->sweep_tolerance, "stop bisecting at this relative width")
      ->capture_default_str();
  cmd->add_option("--resources", args->resources, "cores or GPUs behind the endpoint: goodput per resource");
  cmd->add_flag("--no-progress", args->no_progress, "no live progress line on stderr");

  auto plot_files = std::make_shared<std::vector<std::string>>();
  auto plot_out = std::make_shared<std::string>();
  auto plot_goal = std::make_shared<double>(90);
  auto* plot = cmd->add_subcommand("plot", "draw result JSONs: attainment vs rate, TTFT/TPOT CDFs, timelines");
  plot->add_option("results", *plot_files, "result JSON files of tandem bench (single runs or sweeps)")->required();
  plot->add_option("--out", *plot_out, "FILE.png or FILE.svg")->required();
  plot->add_option("--attainment", *plot_goal, "the goal line, in percent")->capture_default_str();
  auto rescore_args = std::make_shared<RescoreArgs>();
  auto* rescore = cmd->add_subcommand("rescore", "judge a saved single-run result under other SLO targets");
  rescore->add_option("result", rescore_args->in, "result JSON of a single tandem bench run")->required();
  rescore->add_option("--goodput", rescore_args->goodput, "SLO targets: ttft:MS tpot:MS e2el:MS");
  rescore->add_option("--slo-config", rescore_args->slo_config, "SLO classes (JSON) for classed requests");
  rescore->add_option("--label", rescore_args->label, "label of the new result");
  rescore->add_option("--out", rescore_args->out, "where to write the new result JSON")->required();
  return {cmd, [args, plot, plot_files, plot_out, plot_goal, rescore, rescore_args]() {
            Status st;
            if (plot->parsed()) {
              st = PlotResultFiles(*plot_files, *plot_out, *plot_goal / 100.0);
              if (st.ok()) std::cout << "wrote " << *plot_out << std::endl;
            } else if (rescore->parsed()) {
              st = RunRescore(*rescore_args);
            } else {
              st = RunBenchCommand(*args);
            }
            return st.ok() ? 0 : ReportError(st);
          }};
}

TANDEM_REGISTER_COMMAND(SetupBench);

}  // namespace
}  // namespace tandem
