// `tandem router`: the OpenAI-compatible front end of a disaggregated cluster whose prefill and
// decode nodes run elsewhere. Needs the model directory only for the tokenizer, chat template
// and context window; it loads no weights. Runs until SIGINT/SIGTERM.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/http_options.h"
#include "apps/node_command.h"
#include "apps/router_runtime.h"
#include "apps/tls_options.h"
#include "common/logging.h"

namespace tandem {
namespace {

struct RouterArgs {
  RouterConfig config;
  std::vector<std::string> prefill_nodes;
  std::vector<std::string> decode_nodes;
  std::string cluster_file;
  int ready_timeout_s = 0;
};

Status RunRouter(RouterArgs args) {
  ASSIGN_OR_RETURN(args.config.cluster, BuildClusterSpec(args.prefill_nodes, args.decode_nodes, args.cluster_file));
  args.config.ready_timeout = std::chrono::seconds(args.ready_timeout_s);
  ASSIGN_OR_RETURN(std::unique_ptr<RouterRuntime> router, RouterRuntime::Start(args.config));
  // Scripts wait for this line (stdout) to learn the port, which matters with --port 0.
  std::cout << "listening on http://" << router->host() << ":" << router->port() << std::endl;
  WaitForTerminationSignal();
  GetLogger("router")->info("shutting down");
  router->Stop();
  return Status::Ok();
}

std::pair<CLI::App*, CommandRunner> SetupRouter(CLI::App& app) {
  auto args = std::make_shared<RouterArgs>();
  auto* sub = app.add_subcommand("router", "Serve the OpenAI API in front of prefill and decode nodes");
  sub->add_option("--model", args->config.model_dir, "Model directory (tokenizer, chat template, config)")->required();
  AddHttpOptions(*sub, args->config.http);
  AddAdmissionOptions(*sub, args->config.admission);
  sub->add_option("--prefill-node", args->prefill_nodes, "ID=HOST:PORT of a prefill node (repeatable)");
  sub->add_option("--decode-node", args->decode_nodes, "ID=HOST:PORT of a decode node (repeatable)");
  sub->add_option("--cluster-file", args->cluster_file,
                  "JSON {\"prefill\": [{\"id\", \"address\"}], \"decode\": [...]}; flags add to it")
      ->check(CLI::ExistingFile);
  sub->add_option("--served-model-name", args->config.served_model_name, "Model name clients use");
  sub->add_option("--cluster-secret-file", args->config.cluster_secret_file,
                  "File holding the cluster's shared secret (the nodes' --cluster-secret-file): the router proves it "
                  "to every node and checks theirs")
      ->check(CLI::ExistingFile);
  AddTlsOptions(*sub, &args->config.tls);
  AddPlacementOptions(*sub, args->config.placement);
  sub->add_option("--ready-timeout-s", args->ready_timeout_s,
                  "Wait this long for every node before listening (0: listen at once; /health is 503 until ready)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  return {sub, [args] {
            Status s = RunRouter(*args);
            return s.ok() ? 0 : ReportError(s);
          }};
}

TANDEM_REGISTER_COMMAND(SetupRouter);

}  // namespace
}  // namespace tandem
