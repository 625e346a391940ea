// `tandem decode`: a decode node (decode_node/) serving the router and prefill nodes until
// SIGINT/SIGTERM.
#include <memory>
#include <string>

#include "apps/command.h"
#include "apps/node_command.h"
#include "decode_node/decode_service.h"

namespace tandem {
namespace {

struct DecodeArgs {
  NodeArgs node;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 512;
  KvAllocation kv_allocation = KvAllocation::kGrow;
  int kv_timeout_ms = 10000;
  bool prefix_caching = true;
};

int RunDecode(const DecodeArgs& args) {
  if (args.max_num_seqs <= 0) return ReportError(InvalidArgumentError("--max-num-seqs must be positive"));
  DecodeServiceOptions o;
  o.runtime = args.node.Runtime();
  o.host = args.node.host;
  o.port = static_cast<uint16_t>(args.node.port);
  o.node_id = args.node.node_id;
  o.engine.max_num_seqs = args.max_num_seqs;
  o.engine.max_num_batched_tokens = args.max_num_batched_tokens;
  o.engine.kv_allocation = args.kv_allocation;
  o.engine.enable_prefix_caching = args.prefix_caching;
  o.engine.session.transfer_timeout = std::chrono::milliseconds(args.kv_timeout_ms);
  DecodeService service(o);
  return RunNodeUntilSignal(service, args.node);
}

std::pair<CLI::App*, CommandRunner> SetupDecode(CLI::App& app) {
  auto args = std::make_shared<DecodeArgs>();
  auto* sub = app.add_subcommand("decode", "Run a decode node (receives KV from prefill nodes over UCX)");
  AddNodeOptions(*sub, args->node, "decode-0");
  sub->add_option("--max-num-seqs", args->max_num_seqs, "Sequences per decode step")->capture_default_str();
  sub->add_option("--max-num-batched-tokens", args->max_num_batched_tokens,
                  "Tokens per step: decode tokens, and the recompute of preempted requests")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  AddKvAllocationOption(*sub, &args->kv_allocation);
  AddPrefixCachingOption(*sub, &args->prefix_caching);
  sub->add_option("--kv-timeout-ms", args->kv_timeout_ms, "Reservation -> KvReady bound")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return {sub, [args] { return RunDecode(*args); }};
}

TANDEM_REGISTER_COMMAND(SetupDecode);

}  // namespace
}  // namespace tandem
