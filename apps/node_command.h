// What `tandem prefill` and `tandem decode` share: the flags of a node process and its life
// (start the service, print where it listens, run until SIGINT/SIGTERM, stop).
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "apps/command.h"
#include "common/rpc/rpc_options.h"
#include "engine/scheduler.h"
#include "node/node_runtime.h"

namespace tandem {

struct NodeArgs {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string node_id;
  int threads = 0;
  double kv_cache_gib = 1.0;
  std::string latency_profile;
  int metrics_port = -1;
  std::string cluster_secret_file;
  rpc::TlsFiles tls;

  NodeRuntimeOptions Runtime() const {
    NodeRuntimeOptions o;
    o.model_dir = model;
    o.threads = threads;
    o.kv_cache_gib = kv_cache_gib;
    o.latency_profile = latency_profile;
    o.metrics_port = metrics_port;
    o.cluster_secret_file = cluster_secret_file;
    o.tls = tls;
    return o;
  }
};

// --model, --host, --port, --node-id (default `default_id`), --threads, --kv-cache-gib,
// --latency-profile, --metrics-port, --cluster-secret-file, --tls-cert/--tls-key/--tls-ca.
void AddNodeOptions(CLI::App& sub, NodeArgs& args, const std::string& default_id);

// --kv-allocation grow|reserve, for an engine that decodes (the worker, decode nodes).
void AddKvAllocationOption(CLI::App& sub, KvAllocation* value);

// --enable-prefix-caching / --no-enable-prefix-caching (vLLM's names), for every engine (the
// worker; prefill nodes skip cached prompt starts; decode nodes keep what they decoded and take
// only the missing blocks of a later turn). `value` holds the default.
void AddPrefixCachingOption(CLI::App& sub, bool* value);

// Blocks the calling thread until SIGINT or SIGTERM.
void WaitForTerminationSignal();

// Starts `service`, prints "listening on HOST:PORT" (tandem serve reads it), serves until a
// termination signal, stops. The process's exit code.
template <typename Service>
int RunNodeUntilSignal(Service& service, const NodeArgs& args) {
  const Status started = service.Start();
  if (!started.ok()) return ReportError(started);
  if (service.metrics_port() != 0) {  // before the listening line: tandem serve reads both, in this order
    std::cout << "metrics on http://" << args.host << ":" << service.metrics_port() << "/metrics" << std::endl;
  }
  std::cout << "listening on " << args.host << ":" << service.port() << std::endl;
  WaitForTerminationSignal();
  service.Stop();
  return 0;
}

}  // namespace tandem
