#include "apps/router_runtime.h"

#include "common/logging.h"
#include "common/rpc/cluster_auth.h"
#include "common/rpc/tls.h"
#include "model/model_config.h"

namespace tandem {

Result<std::unique_ptr<RouterRuntime>> RouterRuntime::Start(const RouterConfig& config) {
  auto log = GetLogger("router");
  RETURN_IF_ERROR(config.cluster.Validate());
  ASSIGN_OR_RETURN(ModelConfig model_config, LoadModelConfig(config.model_dir));
  std::unique_ptr<RouterRuntime> rt(new RouterRuntime());
  ASSIGN_OR_RETURN(rt->model_, LoadServedModel(config.model_dir, config.served_model_name, model_config));
  ASSIGN_OR_RETURN(std::unique_ptr<PlacementPolicy> policy, MakePlacementPolicy(config.placement));
  ClusterClientOptions co;
  if (!config.cluster_secret_file.empty()) {
    ASSIGN_OR_RETURN(co.connection.cluster_secret, rpc::LoadClusterSecret(config.cluster_secret_file));
  }
  ASSIGN_OR_RETURN(co.connection.tls, rpc::LoadTlsContext(config.tls));
  co.cluster = config.cluster;
  co.model_name = rt->model_->name;
  co.limits = RequestLimits::ForModel(model_config);
  co.first_token_timeout = config.admission.first_token_timeout;
  co.inter_token_timeout = config.admission.inter_token_timeout;
  co.max_queued = config.admission.max_queued;
  co.kv_aware_routing = config.placement.kv_aware_routing;
  HttpServerOptions http = config.http;
  http.metrics = std::make_shared<RouterMetrics>(rt->model_->name, "router");
  ASSIGN_OR_RETURN(co.on_finished, FinishedHook(config.admission, http.metrics));
  ASSIGN_OR_RETURN(rt->client_, ClusterClient::Create(std::move(co), std::move(policy)));
  if (config.ready_timeout.count() > 0) {
    RETURN_IF_ERROR(rt->client_->WaitReady(config.ready_timeout));
    log->info("all {} prefill and {} decode nodes are ready", config.cluster.prefill.size(),
              config.cluster.decode.size());
  }
  rt->host_ = config.http.host;
  rt->server_ = std::make_unique<HttpServer>(std::move(http), rt->model_, *rt->client_);
  RETURN_IF_ERROR(rt->server_->Start());
  return rt;
}

RouterRuntime::~RouterRuntime() { Stop(); }

void RouterRuntime::Stop() {
  if (server_) server_->Stop();
  if (client_) client_->Stop();
}

}  // namespace tandem
