// `tandem worker`: the colocated server (router HTTP API + one in-process engine doing prefill
// and decode with chunked prefill). Our own goodput baseline; runs until SIGINT/SIGTERM.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <iostream>
#include <memory>
#include <string>

#include "apps/command.h"
#include "apps/http_options.h"
#include "apps/node_command.h"
#include "common/logging.h"
#include "frontend/http_server.h"
#include "frontend/served_model.h"
#include "kernels/backend.h"
#include "worker/local_engine_client.h"

namespace tandem {
namespace {

struct WorkerArgs {
  std::string model;
  std::string served_model_name;
  std::string device = "cpu";
  int threads = 0;
  double kv_cache_gib = 0.0;
  LocalEngineOptions engine;
  HttpServerOptions http;
  AdmissionFlags admission;
};

Status RunWorker(WorkerArgs args) {
  auto log = GetLogger("worker");
  BackendOptions backend_options;
  backend_options.num_threads = args.threads;
  if (args.kv_cache_gib > 0) backend_options.kv_cache_bytes = static_cast<size_t>(args.kv_cache_gib * (1ull << 30));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(args.device, backend_options));
  args.engine.first_token_timeout = args.admission.first_token_timeout;
  args.engine.inter_token_timeout = args.admission.inter_token_timeout;
  args.engine.max_queued = args.admission.max_queued;
  // The served name is known only once the model is loaded; the metrics get it through this.
  auto metrics = std::make_shared<std::shared_ptr<RouterMetrics>>();
  ASSIGN_OR_RETURN(auto log_hook, FinishedHook(args.admission, nullptr));
  args.engine.on_finished = [metrics, log_hook](const RequestRecord& r) {
    if (*metrics) (*metrics)->ObserveFinished(r);
    log_hook(r);
  };
  ASSIGN_OR_RETURN(std::unique_ptr<LocalEngineClient> client,
                   LocalEngineClient::Create(std::move(backend), args.model, args.engine));
  ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> model,
                   LoadServedModel(args.model, args.served_model_name, client->config()));
  args.http.metrics = std::make_shared<RouterMetrics>(model->name, "worker");
  *metrics = args.http.metrics;  // before the server starts: no request has finished yet
  // Installed before the server starts, so an early signal still shuts down cleanly.
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  HttpServer server(args.http, model, *client);
  RETURN_IF_ERROR(server.Start());
  // Scripts wait for this line (stdout) to learn the port, which matters with --port 0.
  std::cout << "listening on http://" << args.http.host << ":" << server.port() << std::endl;

  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (!ec) log->info("received signal {}; shutting down", signo);
  });
  signals_ioc.run();

  server.Stop();   // no new requests; open connections dropped, their requests aborted
  client->Stop();  // remaining requests failed, engine thread joined (bounded)
  log->info("stopped");
  return Status::Ok();
}

std::pair<CLI::App*, CommandRunner> SetupWorker(CLI::App& app) {
  auto args = std::make_shared<WorkerArgs>();
  auto* sub = app.add_subcommand("worker", "Serve the OpenAI API from one colocated engine (the baseline)");
  sub->add_option("--model", args->model, "Hugging Face model directory")->required();
  AddHttpOptions(*sub, args->http);
  AddAdmissionOptions(*sub, args->admission);
  sub->add_option("--served-model-name", args->served_model_name, "Model name clients use (default: the dir's name)");
  sub->add_option("--max-num-seqs", args->engine.engine.max_num_seqs, "Max sequences per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--max-num-batched-tokens", args->engine.engine.max_num_batched_tokens, "Token budget per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  AddKvAllocationOption(*sub, &args->engine.engine.kv_allocation);
  args->engine.engine.enable_prefix_caching = true;
  AddPrefixCachingOption(*sub, &args->engine.engine.enable_prefix_caching);
  sub->add_option("--device", args->device, "cpu or cuda")->capture_default_str();
  sub->add_option("--threads", args->threads, "CPU threads (0: all cores)")->capture_default_str();
  sub->add_option("--kv-cache-gib", args->kv_cache_gib, "KV cache budget in GiB (0: backend default)");
  return {sub, [args] {
            Status s = RunWorker(*args);
            return s.ok() ? 0 : ReportError(s);
          }};
}

TANDEM_REGISTER_COMMAND(SetupWorker);

}  // namespace
}  // namespace tandem
