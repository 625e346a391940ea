// `tandem serve`: a whole disaggregated cluster on this machine. Spawns M `tandem decode` and
// N `tandem prefill` children (this same binary) on ephemeral ports, reads each one's
// "listening on 127.0.0.1:PORT" line, then runs the router in-process. SIGINT/SIGTERM stops the
// router and then the children (SIGTERM, SIGKILL after a grace period, always reaped). A node
// that dies while serving is restarted on its port (LocalCluster::Supervise); meanwhile the
// router serves on the others and GET /health answers 200 "degraded".
//
// --demo uses the built-in tiny model (made on first use next to the binary, in
// <build>/models/tiny, or under ~/.cache/tandem when that is not writable); --demo-request sends
// one streaming chat completion to the router, prints the reply and shuts everything down.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apps/command.h"
#include "apps/demo_request.h"
#include "apps/http_options.h"
#include "apps/node_process.h"
#include "apps/router_runtime.h"
#include "apps/scrape_config.h"
#include "apps/tls_options.h"
#include "common/logging.h"
#include "common/rpc/cluster_auth.h"
#include "common/rpc/tls_certificate.h"
#include "model/make_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

struct ServeArgs {
  std::string model;
  bool demo = false;
  bool demo_request = false;
  std::string demo_prompt = "Hello! What is disaggregated serving?";
  int demo_max_tokens = 32;
  int num_prefill = 1;
  int num_decode = 1;
  int node_threads = 0;
  int max_num_batched_tokens = 0;  // 0: the node's default
  std::string prefill_queue;       // "": the node's default
  int max_num_seqs = 0;
  std::string kv_allocation;  // "": the node's default
  bool prefix_caching = true;
  double kv_cache_gib = 0;
  int kv_timeout_ms = 0;
  int start_timeout_s = 120;
  std::string log_dir;
  std::string scrape_config;  // "": <log_dir>/prometheus.yml
  int scrape_interval_s = 5;
  bool tls = false;  // --tls: the control plane speaks TLS, with a certificate made here unless given
  RouterConfig router;
};

// Flags SIGINT/SIGTERM from the moment it exists; Wait returns early when one arrived.
class StopSignal {
 public:
  StopSignal() : signals_(io_, SIGINT, SIGTERM) {
    signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      std::lock_guard<std::mutex> lock(mu_);
      signo_ = signo;
      cv_.notify_all();
    });
    thread_ = std::thread([this] { io_.run(); });
  }
  ~StopSignal() {
    io_.stop();
    thread_.join();
  }
  // True when a signal arrived (within `timeout`).
  bool Wait(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return signo_ != 0; });
  }
  bool raised() { return Wait(milliseconds(0)); }

 private:
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  int signo_ = 0;
};

Result<std::string> DemoModelDir(const fs::path& exe) {
  std::vector<fs::path> candidates = {exe.parent_path().parent_path() / "models" / "tiny"};
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (xdg && *xdg)
    candidates.push_back(fs::path(xdg) / "tandem" / "models" / "tiny");
  else if (home && *home)
    candidates.push_back(fs::path(home) / ".cache" / "tandem" / "models" / "tiny");
  std::string errors;
  for (const fs::path& dir : candidates) {
    if (fs::exists(dir / "config.json") && fs::exists(dir / "model.safetensors")) return dir.string();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || ::access(dir.c_str(), W_OK) != 0) {
      errors += " " + dir.string() + " (not writable)";
      continue;
    }
    MakeModelOptions o;
    o.preset = "tiny";
    o.out_dir = dir.string();
    o.force = true;
    const Status st = MakeModel(o);
    if (st.ok()) {
      GetLogger("serve")->info("made the built-in tiny model in {}", dir.string());
      return dir.string();
    }
    errors += " " + dir.string() + " (" + st.ToString() + ")";
  }
  return UnavailableError("cannot create the demo model in any of:" + errors);
}

class LocalCluster {
 public:
  ~LocalCluster() { Shutdown(milliseconds(5000)); }

  Status Spawn(const std::string& exe, const ServeArgs& args, const std::string& model, const std::string& log_dir,
               StopSignal& stop) {
    const milliseconds timeout(args.start_timeout_s * 1000);
    // Every node starts at once: prefill nodes learn where the decode nodes are from the router
    // (ClusterView), so nothing waits for a port before it starts loading its model.
    for (int i = 0; i < args.num_decode; ++i) {
      RETURN_IF_ERROR(Start(exe, "decode", "decode-" + std::to_string(i), model, args, log_dir));
    }
    for (int i = 0; i < args.num_prefill; ++i) {
      RETURN_IF_ERROR(Start(exe, "prefill", "prefill-" + std::to_string(i), model, args, log_dir));
    }
    for (size_t i = 0; i < children_.size(); ++i) {
      NodeProcess& c = *children_[i];
      ASSIGN_OR_RETURN(uint16_t port, c.WaitListening(timeout));
      if (stop.raised()) return AbortedError("interrupted during start-up");
      (static_cast<int>(i) < args.num_decode ? spec.decode : spec.prefill).push_back({c.name(), "127.0.0.1", port});
      supervised_[i].argv[supervised_[i].port_arg] = std::to_string(port);  // a restart reuses it
      if (c.metrics_port() == 0) return InternalError(c.name() + " did not say where it serves its metrics");
      supervised_[i].argv[supervised_[i].metrics_port_arg] = std::to_string(c.metrics_port());  // and this
      metrics_targets.push_back({c.name(), "127.0.0.1", c.metrics_port()});
    }
    return Status::Ok();
  }

  // Restarts nodes that died, on their own port, so the router's reconnection finds them: the
  // first try a second after the death, doubling to 30 s while restarts keep failing, and at
  // most kMaxRestartsPerMinute per node per minute (a node that cannot stay up is left down,
  // and the router keeps serving on the others). Each death is logged once, with its log's tail.
  void Supervise() {
    constexpr int kMaxRestartsPerMinute = 5;
    const auto now = std::chrono::steady_clock::now();
    auto log = GetLogger("serve");
    for (size_t i = 0; i < children_.size(); ++i) {
      Supervised& s = supervised_[i];
      NodeProcess& c = *children_[i];
      if (c.Alive()) {
        if (now - s.started > std::chrono::seconds(60)) s.backoff = std::chrono::seconds(1);  // it stayed up
        continue;
      }
      if (!s.death_logged) {
        log->error("{} exited ({}); its log {} ends with:\n{}", c.name(), c.ExitDescription(), c.log_path(),
                   c.LogTail());
        s.death_logged = true;
        s.next_try = now + s.backoff;
      }
      if (now < s.next_try) continue;
      while (!s.restarts.empty() && now - s.restarts.front() > std::chrono::minutes(1)) s.restarts.pop_front();
      if (static_cast<int>(s.restarts.size()) >= kMaxRestartsPerMinute) {
        log->error("{} was restarted {} times in a minute; leaving it down for a minute", c.name(),
                   kMaxRestartsPerMinute);
        s.next_try = now + std::chrono::minutes(1);
        continue;
      }
      log->warn("restarting {} on port {}", c.name(), s.argv[s.port_arg]);
      s.restarts.push_back(now);
      s.backoff = std::min<std::chrono::milliseconds>(s.backoff * 2, std::chrono::seconds(30));
      s.next_try = now + s.backoff;
      std::error_code ec;  // the dead node's log stays, as <log>.prev
      fs::rename(c.log_path(), c.log_path() + ".prev", ec);
      auto child = NodeProcess::Spawn(c.name(), s.argv, c.log_path());
      if (!child.ok()) {
        log->error("restarting {}: {}", c.name(), child.status().ToString());
        continue;
      }
      log->info("started {} (pid {}), log {}", c.name(), (*child)->pid(), (*child)->log_path());
      children_[i] = std::move(*child);
      s.death_logged = false;
      s.started = now;
    }
  }

  // The first child found dead, as an error naming it; OK while all run.
  Status CheckAlive() {
    for (auto& c : children_) {
      if (!c->Alive()) {
        return UnavailableError(c->name() + " exited (" + c->ExitDescription() + "); its log " + c->log_path() +
                                " ends with:\n" + c->LogTail());
      }
    }
    return Status::Ok();
  }

  // SIGTERM to all, then each gets what is left of `grace` before SIGKILL.
  void Shutdown(milliseconds grace) {
    if (children_.empty()) return;
    for (auto& c : children_) c->Signal(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    auto log = GetLogger("serve");
    for (auto& c : children_) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      const std::string how = c->Terminate(std::max(left, milliseconds(0)));
      log->info("{} (pid {}) stopped: {}", c->name(), c->pid(), how);
    }
    children_.clear();
    supervised_.clear();
  }

  ClusterSpec spec;
  std::vector<MetricsTarget> metrics_targets;  // every node's GET /metrics

  // --node-threads, or the machine's cores shared out among the nodes: each node's OpenMP team
  // otherwise takes every core, and teams that oversubscribe cores stall each other badly.
  static int NodeThreads(const ServeArgs& args) {
    if (args.node_threads > 0) return args.node_threads;
    cpu_set_t allowed;  // the cores this process may use (taskset, cgroups), not all the machine's
    CPU_ZERO(&allowed);
    const int cores = sched_getaffinity(0, sizeof(allowed), &allowed) == 0
                          ? std::max(1, CPU_COUNT(&allowed))
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return std::max(1, cores / std::max(1, args.num_prefill + args.num_decode));
  }

 private:
  Status Start(const std::string& exe, const std::string& role, const std::string& id, const std::string& model,
               const ServeArgs& args, const std::string& log_dir) {
    std::vector<std::string> argv = {exe,         role, "--model",        model, "--port", "0",
                                     "--node-id", id,   "--metrics-port", "0"};
    argv.push_back("--threads");
    argv.push_back(std::to_string(NodeThreads(args)));
    auto pass = [&](const char* flag, auto value) {
      if (value <= 0) return;
      argv.push_back(flag);
      argv.push_back(std::to_string(value));
    };
    pass("--kv-cache-gib", args.kv_cache_gib);
    if (role == "prefill") pass("--max-num-batched-tokens", args.max_num_batched_tokens);
    if (!args.router.placement.latency_profile.empty()) {
      argv.push_back("--latency-profile");
      argv.push_back(args.router.placement.latency_profile);
    }
    if (role == "prefill" && !args.prefill_queue.empty()) {
      argv.push_back("--prefill-queue");
      argv.push_back(args.prefill_queue);
    }
    if (!args.prefix_caching) argv.push_back("--no-enable-prefix-caching");
    if (role == "decode") pass("--max-num-seqs", args.max_num_seqs);
    if (role == "decode" && !args.kv_allocation.empty()) {
      argv.push_back("--kv-allocation");
      argv.push_back(args.kv_allocation);
    }
    if (role == "decode") pass("--kv-timeout-ms", args.kv_timeout_ms);
    argv.push_back("--cluster-secret-file");
    argv.push_back(args.router.cluster_secret_file);
    AppendTlsArgs(args.router.tls, &argv);
    ASSIGN_OR_RETURN(std::unique_ptr<NodeProcess> child, NodeProcess::Spawn(id, argv, log_dir + "/" + id + ".log"));
    GetLogger("serve")->info("started {} (pid {}), log {}", id, child->pid(), child->log_path());
    children_.push_back(std::move(child));
    Supervised s;
    s.argv = std::move(argv);
    s.port_arg = static_cast<size_t>(std::find(s.argv.begin(), s.argv.end(), "--port") - s.argv.begin()) + 1;
    s.metrics_port_arg =
        static_cast<size_t>(std::find(s.argv.begin(), s.argv.end(), "--metrics-port") - s.argv.begin()) + 1;
    s.started = std::chrono::steady_clock::now();
    supervised_.push_back(std::move(s));
    return Status::Ok();
  }

  // How each child is restarted (same index as children_).
  struct Supervised {
    std::vector<std::string> argv;
    size_t port_arg = 0;          // argv[port_arg] is its port once known
    size_t metrics_port_arg = 0;  // and argv[metrics_port_arg] its metrics port
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point next_try;
    std::chrono::milliseconds backoff{1000};
    std::deque<std::chrono::steady_clock::time_point> restarts;  // within the last minute
    bool death_logged = false;
  };

  std::vector<std::unique_ptr<NodeProcess>> children_;
  std::vector<Supervised> supervised_;
};

// What a user needs once the cluster serves (stderr: stdout has the listening line for scripts).
void PrintEndpoints(const RouterRuntime& router, const std::vector<MetricsTarget>& targets,
                    const std::string& scrape_config) {
  const std::string base = "http://" + router.host() + ":" + std::to_string(router.port());
  std::cerr << "\n  OpenAI API    " << base << "/v1  (model \"" << router.model().name << "\")\n"
            << "  health        " << base << "/health\n"
            << "  load          " << base << "/v1/load\n";
  for (const MetricsTarget& t : targets) {
    std::cerr << "  metrics       http://" << t.host << ":" << t.port << "/metrics  (" << t.name << ")\n";
  }
  std::cerr << "  Prometheus    " << scrape_config << "  (prometheus --config.file=...)\n"
            << "  try: curl " << base << "/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\": \""
            << router.model().name << "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}'\n\n"
            << std::flush;
}

Status RunServe(ServeArgs args) {
  auto log = GetLogger("serve");
  StopSignal stop;  // before any child exists, so an early Ctrl-C still cleans up
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return UnavailableError("cannot find our own executable: " + ec.message());
  if (args.model.empty()) {
    if (!args.demo) return InvalidArgumentError("give --model DIR, or --demo for the built-in model");
    ASSIGN_OR_RETURN(args.model, DemoModelDir(exe));
  }
  if (args.log_dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "tandem-serve-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return UnavailableError("cannot create a log directory in /tmp");
    args.log_dir = tmpl;
  } else {
    fs::create_directories(args.log_dir, ec);
    if (ec) return InvalidArgumentError("--log-dir " + args.log_dir + ": " + ec.message());
  }

  if (args.router.cluster_secret_file.empty()) {  // a fresh secret per cluster, readable by us only
    args.router.cluster_secret_file = (fs::path(args.log_dir) / "cluster.secret").string();
    RETURN_IF_ERROR(rpc::WriteNewClusterSecret(args.router.cluster_secret_file));
  }
  if (args.tls && args.router.tls.empty()) {  // one self-signed certificate for every process here
    const fs::path dir(args.log_dir);
    args.router.tls = {(dir / "cluster.crt").string(), (dir / "cluster.key").string(), (dir / "cluster.crt").string()};
    RETURN_IF_ERROR(rpc::WriteSelfSignedCertificate(args.router.tls.cert_file, args.router.tls.key_file,
                                                    {"127.0.0.1", "localhost"}));
  }
  LocalCluster cluster;
  RETURN_IF_ERROR(cluster.Spawn(exe.string(), args, args.model, args.log_dir, stop));
  args.router.model_dir = args.model;
  args.router.cluster = cluster.spec;
  ASSIGN_OR_RETURN(std::unique_ptr<RouterRuntime> router, RouterRuntime::Start(args.router));

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(args.start_timeout_s);
  while (!router->client().WaitReady(milliseconds(200)).ok()) {
    RETURN_IF_ERROR(cluster.CheckAlive());
    if (stop.raised()) return AbortedError("interrupted during start-up");
    if (std::chrono::steady_clock::now() > deadline) return router->client().WaitReady(milliseconds(0));
  }
  log->info("cluster ready: {} prefill, {} decode nodes; node logs in {}", args.num_prefill, args.num_decode,
            args.log_dir);
  // stdout carries only the reply with --demo-request, so the line goes to stderr then.
  (args.demo_request ? std::cerr : std::cout)
      << "listening on http://" << router->host() << ":" << router->port() << std::endl;
  if (!args.demo_request) {
    std::vector<MetricsTarget> targets = {{"router", router->host(), router->port()}};
    targets.insert(targets.end(), cluster.metrics_targets.begin(), cluster.metrics_targets.end());
    if (args.scrape_config.empty()) args.scrape_config = (fs::path(args.log_dir) / "prometheus.yml").string();
    RETURN_IF_ERROR(WriteScrapeConfig(args.scrape_config, targets, args.scrape_interval_s));
    PrintEndpoints(*router, targets, args.scrape_config);
  }

  Status result = Status::Ok();
  if (args.demo_request) {
    DemoRequest req;
    req.host = router->host();
    req.port = router->port();
    req.model = router->model().name;
    req.prompt = args.demo_prompt;
    req.max_tokens = args.demo_max_tokens;
    req.api_key = args.router.http.api_key;
    std::cerr << "user: " << req.prompt << "\nassistant: " << std::flush;
    auto finish = RunDemoRequest(req, std::cout);
    std::cout << std::endl;
    if (finish.ok()) {
      std::cerr << "[finish_reason: " << *finish << "]" << std::endl;
    } else {
      result = finish.status();
    }
  } else {
    // A node that dies is restarted; meanwhile the router serves on the others.
    while (!stop.Wait(milliseconds(500))) cluster.Supervise();
    log->info("shutting down");
  }
  router->Stop();
  cluster.Shutdown(milliseconds(5000));
  return result;
}

std::pair<CLI::App*, CommandRunner> SetupServe(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  args->router.http.port = 8000;
  auto* sub = app.add_subcommand("serve", "Run a local disaggregated cluster: prefill and decode nodes + router");
  sub->add_option("--model", args->model, "Hugging Face model directory");
  sub->add_flag("--demo", args->demo, "Use the built-in tiny model (made on first use)");
  sub->add_flag("--demo-request", args->demo_request,
                "Send one streaming chat completion, print the reply, then shut down");
  sub->add_option("--demo-prompt", args->demo_prompt, "The user message of --demo-request")->capture_default_str();
  sub->add_option("--demo-max-tokens", args->demo_max_tokens, "max_tokens of --demo-request")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--num-prefill", args->num_prefill, "Prefill nodes")->capture_default_str()->check(CLI::Range(1, 64));
  sub->add_option("--num-decode", args->num_decode, "Decode nodes")->capture_default_str()->check(CLI::Range(1, 64));
  sub->add_option("--node-threads", args->node_threads,
                  "CPU threads per node (0: the allowed cores divided among the nodes)")
      ->capture_default_str();
  sub->add_option("--max-num-batched-tokens", args->max_num_batched_tokens,
                  "Prefill nodes' token budget per step (0: the node's default)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--prefill-queue", args->prefill_queue, "Prefill nodes' queue order: edf (default) or fcfs")
      ->check(CLI::IsMember({"edf", "fcfs"}));
  sub->add_option("--max-num-seqs", args->max_num_seqs, "Decode nodes' sequences per step (0: the node's default)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--kv-allocation", args->kv_allocation,
                  "Decode nodes' KV memory: grow (default; preempt and recompute when the pool runs out) or reserve "
                  "(prompt + max_tokens up front)")
      ->check(CLI::IsMember({"grow", "reserve"}));
  sub->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", args->prefix_caching,
                "Nodes reuse the KV blocks of prompt prefixes they hold (prefill nodes skip computing them, decode "
                "nodes receive only the blocks they lack); default: on");
  sub->add_option("--kv-cache-gib", args->kv_cache_gib, "Every node's KV pool in GiB (0: the node's default)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--kv-timeout-ms", args->kv_timeout_ms,
                  "Decode nodes: reservation -> KV arrival bound (0: the node's default)")
      ->check(CLI::NonNegativeNumber);
  AddHttpOptions(*sub, args->router.http);
  AddAdmissionOptions(*sub, args->router.admission);
  sub->add_option("--served-model-name", args->router.served_model_name, "Model name clients use");
  sub->add_option("--cluster-secret-file", args->router.cluster_secret_file,
                  "The cluster's shared secret, given to the router and every node (default: a new random one in "
                  "the log directory, mode 0600)")
      ->check(CLI::ExistingFile);
  AddTlsOptions(*sub, &args->router.tls);
  sub->add_flag("--tls", args->tls,
                "TLS between the router and the nodes; without --tls-cert/--tls-key/--tls-ca, a self-signed "
                "certificate is made in the log directory (mode 0600 key)");
  AddPlacementOptions(*sub, args->router.placement);
  sub->add_option("--start-timeout-s", args->start_timeout_s, "Bound on node start-up")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  sub->add_option("--log-dir", args->log_dir, "Where node logs go (default: a new /tmp/tandem-serve-* dir)");
  sub->add_option(
      "--scrape-config", args->scrape_config,
      "Where to write the Prometheus configuration scraping every process (default: LOG_DIR/prometheus.yml)");
  sub->add_option("--scrape-interval-s", args->scrape_interval_s, "Scrape interval written into it")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  return {sub, [args] {
            Status s = RunServe(*args);
            return s.ok() ? 0 : ReportError(s);
          }};
}

TANDEM_REGISTER_COMMAND(SetupServe);

}  // namespace
}  // namespace tandem
