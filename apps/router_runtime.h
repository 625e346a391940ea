// The router process's pieces, shared by `tandem router` (nodes started elsewhere) and
// `tandem serve` (nodes spawned locally): the served model (tokenizer, chat template, context
// window: no weights), the ClusterClient to the nodes and the OpenAI HTTP server in front.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "apps/http_options.h"
#include "common/rpc/rpc_options.h"
#include "common/status.h"
#include "frontend/http_server.h"
#include "frontend/served_model.h"
#include "scheduler/cluster_client.h"

namespace tandem {

struct RouterConfig {
  std::string model_dir;
  std::string served_model_name;  // empty: the directory's name
  ClusterSpec cluster;
  PlacementFlags placement;
  HttpServerOptions http;
  AdmissionFlags admission;
  // How long Start waits for every node to connect and report before serving anyway
  // (GET /health answers 503 until they have). 0: do not wait.
  std::chrono::milliseconds ready_timeout{0};
  // The cluster's shared secret, proven to every node at connection ("": none).
  std::string cluster_secret_file;
  // --tls-cert, --tls-key, --tls-ca: the control plane speaks TLS (none: plain TCP).
  rpc::TlsFiles tls;
};

class RouterRuntime {
 public:
  // Loads the model's config and tokenizer, starts connecting to the nodes, then binds the
  // HTTP port. Errors: the loader's, InvalidArgument for a bad cluster or policy, Unavailable
  // when the port cannot be bound, DeadlineExceeded when ready_timeout passes.
  static Result<std::unique_ptr<RouterRuntime>> Start(const RouterConfig& config);
  ~RouterRuntime();  // Stop()

  // HTTP server first (no new requests), then the cluster client. Idempotent.
  void Stop();

  uint16_t port() const { return server_->port(); }
  const std::string& host() const { return host_; }
  const ServedModel& model() const { return *model_; }
  ClusterClient& client() { return *client_; }

 private:
  RouterRuntime() = default;
  std::string host_;
  std::shared_ptr<const ServedModel> model_;
  std::unique_ptr<ClusterClient> client_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace tandem
