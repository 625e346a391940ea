// `tandem prefill`: a prefill node (prefill_node/) serving the router until SIGINT/SIGTERM.
#include <memory>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/node_command.h"
#include "prefill_node/prefill_service.h"

namespace tandem {
namespace {

struct PrefillArgs {
  NodeArgs node;
  std::vector<std::string> decode_nodes;
  int32_t max_num_batched_tokens = 2048;
  std::string queue = "edf";
  bool prefix_caching = true;
};

int RunPrefill(const PrefillArgs& args) {
  if (args.max_num_batched_tokens <= 0) return ReportError(InvalidArgumentError("--max-num-batched-tokens must be positive"));
  PrefillServiceOptions o;
  o.runtime = args.node.Runtime();
  o.host = args.node.host;
  o.port = static_cast<uint16_t>(args.node.port);
  o.node_id = args.node.node_id;
  o.engine.max_num_batched_tokens = args.max_num_batched_tokens;
  o.engine.enable_prefix_caching = args.prefix_caching;
  o.engine.queue_order = args.queue == "fcfs" ? QueueOrder::kArrival : QueueOrder::kDeadline;
  for (const std::string& d : args.decode_nodes) {
    auto a = ParseDecodeNodeAddress(d);
    if (!a.ok()) return ReportError(a.status());
    o.decode_nodes.push_back(*a);
  }
  PrefillService service(o);
  return RunNodeUntilSignal(service, args.node);
}

std::pair<CLI::App*, CommandRunner> SetupPrefill(CLI::App& app) {
  auto args = std::make_shared<PrefillArgs>();
  auto* sub = app.add_subcommand("prefill", "Run a prefill node (pushes KV to decode nodes over UCX)");
  AddNodeOptions(*sub, args->node, "prefill-0");
  sub->add_option("--decode-node", args->decode_nodes,
                  "ID=HOST:PORT of a decode node (repeatable; optional: the router tells us where its decode nodes are)");
  sub->add_option("--max-num-batched-tokens", args->max_num_batched_tokens, "Token budget per step")
      ->capture_default_str();
  sub->add_option("--prefill-queue", args->queue,
                  "edf: earliest TTFT deadline first (arrival + the request's target; 10 s without one); fcfs: "
                  "arrival order")
      ->capture_default_str()
      ->check(CLI::IsMember({"edf", "fcfs"}));
  AddPrefixCachingOption(*sub, &args->prefix_caching);
  return {sub, [args] { return RunPrefill(*args); }};
}

TANDEM_REGISTER_COMMAND(SetupPrefill);

}  // namespace
}  // namespace tandem
