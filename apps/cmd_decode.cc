// `tandem decode`: a decode node (decode_node/) serving the router and prefill nodes until
// SIGINT/SIGTERM.
#include <iostream>
#include <memory>
#include <string>

#include "apps/command.h"
#include "apps/node_signals.h"
#include "decode_node/decode_service.h"

namespace tandem {
namespace {

struct DecodeArgs {
  std::string model;
  int port = 0;
  std::string node_id = "decode-0";
  int32_t max_num_seqs = 64;
  int threads = 0;
  double kv_cache_gib = 1.0;
  int kv_timeout_ms = 10000;
};

int RunDecode(const DecodeArgs& args) {
  DecodeServiceOptions o;
  o.runtime.model_dir = args.model;
  o.runtime.threads = args.threads;
  o.runtime.kv_cache_gib = args.kv_cache_gib;
  o.port = static_cast<uint16_t>(args.port);
  o.node_id = args.node_id;
  if (args.max_num_seqs <= 0) return ReportError(InvalidArgumentError("--max-num-seqs must be positive"));
  o.engine.max_num_seqs = args.max_num_seqs;
  o.engine.session.transfer_timeout = std::chrono::milliseconds(args.kv_timeout_ms);
  DecodeService service(o);
  Status s = service.Start();
  if (!s.ok()) return ReportError(s);
  std::cout << "listening on 127.0.0.1:" << service.port() << std::endl;
  WaitForTerminationSignal();
  service.Stop();
  return 0;
}

std::pair<CLI::App*, CommandRunner> SetupDecode(CLI::App& app) {
  auto args = std::make_shared<DecodeArgs>();
  auto* sub = app.add_subcommand("decode", "Run a decode node (receives KV from prefill nodes over UCX)");
  sub->add_option("--model", args->model, "Hugging Face model directory")->required();
  sub->add_option("--port", args->port, "Control-plane port (0: ephemeral)")->check(CLI::Range(0, 65535));
  sub->add_option("--node-id", args->node_id, "Unique node id")->capture_default_str();
  sub->add_option("--max-num-seqs", args->max_num_seqs, "Sequences per decode step")->capture_default_str();
  sub->add_option("--threads", args->threads, "CPU threads (0: all cores)")->capture_default_str();
  sub->add_option("--kv-cache-gib", args->kv_cache_gib, "KV pool size in GiB")->capture_default_str();
  sub->add_option("--kv-timeout-ms", args->kv_timeout_ms, "Reservation -> KvReady bound")
      ->check(CLI::PositiveNumber)->capture_default_str();
  return {sub, [args] { return RunDecode(*args); }};
}

TANDEM_REGISTER_COMMAND(SetupDecode);

}  // namespace
}  // namespace tandem
