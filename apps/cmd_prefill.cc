// `tandem prefill`: a prefill node (prefill_node/) serving the router until SIGINT/SIGTERM.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/node_signals.h"
#include "prefill_node/prefill_service.h"

namespace tandem {
namespace {

struct PrefillArgs {
  std::string model;
  int port = 0;
  std::string node_id = "prefill-0";
  std::vector<std::string> decode_nodes;
  int32_t max_num_batched_tokens = 2048;
  int threads = 0;
  double kv_cache_gib = 1.0;
};

int RunPrefill(const PrefillArgs& args) {
  PrefillServiceOptions o;
  o.runtime.model_dir = args.model;
  o.runtime.threads = args.threads;
  o.runtime.kv_cache_gib = args.kv_cache_gib;
  o.port = static_cast<uint16_t>(args.port);
  o.node_id = args.node_id;
  o.engine.max_num_batched_tokens = args.max_num_batched_tokens;
  if (args.max_num_batched_tokens <= 0) return ReportError(InvalidArgumentError("--max-num-batched-tokens must be positive"));
  for (const std::string& d : args.decode_nodes) {
    auto a = ParseDecodeNodeAddress(d);
    if (!a.ok()) return ReportError(a.status());
    o.decode_nodes.push_back(*a);
  }
  PrefillService service(o);
  Status s = service.Start();
  if (!s.ok()) return ReportError(s);
  std::cout << "listening on 127.0.0.1:" << service.port() << std::endl;
  WaitForTerminationSignal();
  service.Stop();
  return 0;
}

std::pair<CLI::App*, CommandRunner> SetupPrefill(CLI::App& app) {
  auto args = std::make_shared<PrefillArgs>();
  auto* sub = app.add_subcommand("prefill", "Run a prefill node (pushes KV to decode nodes over UCX)");
  sub->add_option("--model", args->model, "Hugging Face model directory")->required();
  sub->add_option("--port", args->port, "Control-plane port (0: ephemeral)")->check(CLI::Range(0, 65535));
  sub->add_option("--node-id", args->node_id, "Unique node id")->capture_default_str();
  sub->add_option("--decode-node", args->decode_nodes, "ID=HOST:PORT of a decode node (repeatable)");
  sub->add_option("--max-num-batched-tokens", args->max_num_batched_tokens, "Token budget per step")
      ->capture_default_str();
  sub->add_option("--threads", args->threads, "CPU threads (0: all cores)")->capture_default_str();
  sub->add_option("--kv-cache-gib", args->kv_cache_gib, "KV pool size in GiB")->capture_default_str();
  return {sub, [args] { return RunPrefill(*args); }};
}

TANDEM_REGISTER_COMMAND(SetupPrefill);

}  // namespace
}  // namespace tandem
