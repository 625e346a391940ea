#include "apps/node_command.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <map>

#include "apps/tls_options.h"

namespace tandem {

void AddNodeOptions(CLI::App& sub, NodeArgs& args, const std::string& default_id) {
  args.node_id = default_id;
  sub.add_option("--model", args.model, "Hugging Face model directory")->required();
  sub.add_option("--host", args.host, "Control-plane address to listen on (0.0.0.0: every interface)")
      ->capture_default_str();
  sub.add_option("--port", args.port, "Control-plane port (0: ephemeral)")->check(CLI::Range(0, 65535));
  sub.add_option("--node-id", args.node_id, "Unique node id")->capture_default_str();
  sub.add_option("--threads", args.threads, "CPU threads (0: all cores)")->capture_default_str();
  sub.add_option("--kv-cache-gib", args.kv_cache_gib, "KV pool size in GiB")->capture_default_str();
  sub.add_option("--latency-profile", args.latency_profile,
                 "Latency model (tandem profile): the node reports its measured / predicted step time with its load")
      ->check(CLI::ExistingFile);
  sub.add_option("--metrics-port", args.metrics_port,
                 "Serve Prometheus metrics on this port at /metrics, on --host (0: ephemeral; default: not served)")
      ->check(CLI::Range(0, 65535));
  sub.add_option("--cluster-secret-file", args.cluster_secret_file,
                 "File holding the cluster's shared secret: routers and nodes connecting here must prove they hold "
                 "it (HMAC challenge-response) before anything else they send is read; this node proves it to the "
                 "decode nodes it connects to")
      ->check(CLI::ExistingFile);
  AddTlsOptions(sub, &args.tls);
}

void AddKvAllocationOption(CLI::App& sub, KvAllocation* value) {
  const std::map<std::string, KvAllocation> names{{"grow", KvAllocation::kGrow}, {"reserve", KvAllocation::kReserve}};
  sub.add_option("--kv-allocation", *value,
                 "grow: a request takes its prompt's KV blocks and more as it decodes, preempting (and recomputing) "
                 "the least important when the pool runs out; reserve: prompt + max_tokens up front (default: grow)")
      ->transform(CLI::CheckedTransformer(names, CLI::ignore_case));
}

void AddPrefixCachingOption(CLI::App& sub, bool* value) {
  sub.add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", *value,
               "Reuse the KV blocks of prompt prefixes computed before (shared system prompts, earlier turns of a "
               "conversation); requests share them only with equal cache_salt (default: on)");
}

void WaitForTerminationSignal() {
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  io.run();
}

}  // namespace tandem
