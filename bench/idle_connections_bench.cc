// What idle keep-alive connections cost the requests that are being served: an HttpServer in this
// process on the colocated worker (LocalEngineClient, the tiny model made in a temp dir), small
// completions sent one after another over one keep-alive connection, timed with none and with
// --idle connections open and silent (each a session waiting for its first byte under the idle
// timeout). The two conditions alternate in --rounds rounds (the idle connections are opened and
// closed each round), so that drift on a shared machine falls on both. The ceiling compared to is
// the same requests with no idle connections: the ratio of p50 and p99 should stay near 1.
//
//   build/bin/idle_connections_bench [--idle 10000] [--requests 300] [--rounds 3] [--max-tokens 4]
//
// Validate first: one completion must return 200 with --max-tokens tokens. The idle connections'
// client ends are held by a child process (this program again, --hold), so that each process
// needs one descriptor per connection; RLIMIT_NOFILE is raised to its hard limit in both, and
// --idle lowered, saying so, when that is not enough. After each round the child reports how many
// the server closed early (must be 0: the figure is for all of them open).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "frontend/http_server.h"
#include "kernels/backend.h"
#include "model/make_model.h"
#include "worker/local_engine_client.h"

namespace tandem {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Args {
  int idle = 10000;
  int requests = 300;  // timed, per condition, over all rounds
  int rounds = 3;
  int max_tokens = 4;
  int http_threads = 2;
  int hold_port = 0;  // child mode: hold --idle connections to this port
};

// One keep-alive connection sending completions synchronously.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(ioc_) {
    beast::error_code ec;
    stream_.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
    ok_ = !ec;
  }
  // The completion's JSON, or null on any failure (printed).
  json Complete(const std::string& body) {
    if (!ok_) return nullptr;
    http::request<http::string_body> req(http::verb::post, "/v1/completions", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    http::write(stream_, req, ec);
    http::response<http::string_body> res;
    if (!ec) http::read(stream_, buffer_, res, ec);
    if (ec || res.result_int() != 200) {
      std::cerr << "request failed: " << (ec ? ec.message() : std::to_string(res.result_int()) + " " + res.body())
                << "\n";
      ok_ = false;
      return nullptr;
    }
    return json::parse(res.body(), nullptr, false);
  }

 private:
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool ok_ = false;
};

// Raises RLIMIT_NOFILE to its hard limit; the descriptors there are room for.
int64_t RaiseFileLimit() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  getrlimit(RLIMIT_NOFILE, &lim);
  return static_cast<int64_t>(lim.rlim_cur);
}

// Child mode: opens `n` silent connections (connected, never written to), prints "opened K",
// waits for a line (or end of input) on stdin, prints "closed C" (how many the server closed
// meanwhile: readable with end of stream or an answer) and exits, closing them all.
int HoldConnections(uint16_t port, int n) {
  RaiseFileLimit();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      break;
    }
    fds.push_back(fd);
  }
  std::printf("opened %zu\n", fds.size());
  std::fflush(stdout);
  std::string line;
  std::getline(std::cin, line);
  int closed = 0;
  for (int fd : fds) {
    char c;
    const ssize_t got = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    closed += got >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
  std::printf(" closed %d", closed);
  std::fflush(stdout);
  return 0;
}

// The parent's side of a child holding idle connections.
class IdleConnections {
 public:
  IdleConnections(uint16_t port, int n) {
    int to_child[2], from_child[2];
    if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    posix_spawn_file_actions_addclose(&actions, to_child[1]);
    posix_spawn_file_actions_addclose(&actions, from_child[0]);
    std::string self = "/proc/self/exe", hold = "--hold", port_s = std::to_string(port), idle = "--idle",
                n_s = std::to_string(n);
    char* argv[] = {self.data(), hold.data(), port_s.data(), idle.data(), n_s.data(), nullptr};
    const int rc = posix_spawn(&pid_, self.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(to_child[0]);
    ::close(from_child[1]);
    to_ = to_child[1];
    from_ = ::fdopen(from_child[0], "r");
    if (rc != 0) {
      pid_ = -1;
      return;
    }
    if (std::fscanf(from_, " opened %d", &opened_) != 1) opened_ = 0;
  }
  ~IdleConnections() { Release(); }
  IdleConnections(const IdleConnections&) = delete;
  IdleConnections& operator=(const IdleConnections&) = delete;
  int size() const { return opened_; }
  // Lets them go; how many the server had closed before that (-1: the child failed).
  int Release() {
    if (pid_ < 0) return closed_;
    if (::write(to_, "\n", 1) != 1 || std::fscanf(from_, " closed %d", &closed_) != 1) closed_ = -1;
    ::close(to_);
    std::fclose(from_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return closed_;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  FILE* from_ = nullptr;
  int opened_ = 0;
  int closed_ = -1;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

double RssMiB() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

int Run(const Args& a) {
  const int64_t limit = RaiseFileLimit();
  int idle = a.idle;
  const int64_t room = limit - 256;  // the model, threads, logs, clients
  if (idle > room) {
    idle = static_cast<int>(std::max<int64_t>(0, room));
    std::cout << "RLIMIT_NOFILE is " << limit << ": --idle lowered to " << idle << "\n";
  }

  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("tandem_idle_bench_" + std::to_string(::getpid()));
  MakeModelOptions mo;
  mo.preset = "tiny";
  mo.seed = 7;
  mo.out_dir = (dir / "tiny").string();
  if (Status st = MakeModel(mo); !st.ok()) {
    std::cerr << st.ToString() << "\n";
    return 1;
  }
  auto backend = CreateBackend("cpu");
  if (!backend.ok()) return 1;
  LocalEngineOptions engine;
  engine.kv_cache.num_blocks = 256;
  auto client = LocalEngineClient::Create(std::move(backend).value(), mo.out_dir, engine);
  if (!client.ok()) {
    std::cerr << client.status().ToString() << "\n";
    return 1;
  }
  auto model = LoadServedModel(mo.out_dir, "", (*client)->config());
  if (!model.ok()) return 1;
  HttpServerOptions o;
  o.port = 0;
  o.num_threads = a.http_threads;
  o.max_connections = idle + 64;
  o.idle_timeout_s = 3600;  // they must stay for the measurement
  HttpServer server(o, *model, **client);
  if (Status st = server.Start(); !st.ok()) {
    std::cerr << st.ToString() << "\n";
    return 1;
  }
  const std::string body =
      json({{"prompt", "Hello there"}, {"max_tokens", a.max_tokens}, {"temperature", 0}, {"ignore_eos", true}}).dump();

  Client c(server.port());
  const json first = c.Complete(body);  // validate
  if (!first.is_object() || first["usage"]["completion_tokens"] != a.max_tokens) {
    std::cerr << "validation failed: " << first.dump() << "\n";
    return 1;
  }
  for (int i = 0; i < 20; ++i) c.Complete(body);  // warm-up

  std::cout << "idle_connections_bench: tiny model, colocated worker, " << a.http_threads << " io threads, "
            << a.max_tokens << " tokens per completion, " << a.requests << " requests per condition over " << a.rounds
            << " rounds, " << idle << " idle connections (RLIMIT_NOFILE " << limit << ")\n";
  std::vector<double> base_ms, idle_ms;
  const int per_round = std::max(1, a.requests / a.rounds);
  const double rss_before = RssMiB();
  double rss_idle = 0, open_s = 0;
  int opened = 0, closed_early = 0;
  const auto time_block = [&](std::vector<double>* out) {
    for (int i = 0; i < per_round; ++i) {
      const auto t0 = Clock::now();
      if (!c.Complete(body).is_object()) return false;
      out->push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    return true;
  };
  for (int round = 0; round < a.rounds; ++round) {
    if (!time_block(&base_ms)) return 1;
    const auto t0 = Clock::now();
    IdleConnections conns(server.port(), idle);
    open_s = std::chrono::duration<double>(Clock::now() - t0).count();
    opened = conns.size();
    // Connected is not yet accepted: let the server take the backlog in before timing.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int i = 0; i < 10; ++i) c.Complete(body);
    if (!time_block(&idle_ms)) return 1;
    rss_idle = std::max(rss_idle, RssMiB());
    const int closed = conns.Release();
    closed_early = closed < 0 ? opened : std::max(closed_early, closed);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);

  const double b50 = Percentile(base_ms, 50), b99 = Percentile(base_ms, 99);
  const double i50 = Percentile(idle_ms, 50), i99 = Percentile(idle_ms, 99);
  std::cout << std::fixed << std::setprecision(3);
  std::cout << std::setw(24) << "condition" << std::setw(10) << "requests" << std::setw(12) << "p50 ms" << std::setw(12)
            << "p99 ms"
            << "\n";
  std::cout << std::setw(24) << "0 idle" << std::setw(10) << base_ms.size() << std::setw(12) << b50 << std::setw(12)
            << b99 << "\n";
  std::cout << std::setw(24) << (std::to_string(opened) + " idle") << std::setw(10) << idle_ms.size() << std::setw(12)
            << i50 << std::setw(12) << i99 << "\n";
  std::cout << "ratio (idle / none): p50 " << i50 / b50 << ", p99 " << i99 / b99 << "\n";
  std::cout << "opening " << opened << " connections took " << open_s << " s; the server closed " << closed_early
            << " of them early; RSS " << rss_before << " MiB -> " << rss_idle << " MiB with them ("
            << (rss_idle - rss_before) * 1024.0 / std::max(1, opened) << " KiB each in the server's process)\n";
  std::cout << json({{"bench", "idle_connections"},
                     {"idle", opened},
                     {"requests", base_ms.size()},
                     {"p50_ms", b50},
                     {"p99_ms", b99},
                     {"idle_p50_ms", i50},
                     {"idle_p99_ms", i99},
                     {"p50_ratio", i50 / b50},
                     {"p99_ratio", i99 / b99},
                     {"closed_early", closed_early},
                     {"rss_mib", rss_before},
                     {"idle_rss_mib", rss_idle}})
                   .dump()
            << "\n";
  const bool all_open = opened == idle && closed_early == 0;
  if (!all_open) std::cerr << "not every idle connection stayed open: the figure is not for " << idle << "\n";
  return all_open ? 0 : 1;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  tandem::Args a;
  CLI::App app{"latency of small completions with and without many idle keep-alive connections"};
  app.add_option("--idle", a.idle, "idle connections opened")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  app.add_option("--requests", a.requests, "timed requests per condition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--rounds", a.rounds, "rounds alternating the conditions")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-tokens", a.max_tokens, "tokens per completion")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--http-threads", a.http_threads, "the server's io threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--hold", a.hold_port, "(internal) hold --idle connections to this port");
  CLI11_PARSE(app, argc, argv);
  if (a.hold_port > 0) return tandem::HoldConnections(static_cast<uint16_t>(a.hold_port), a.idle);
  if (!tandem::SetLogLevel("warn")) return 1;
  return tandem::Run(a);
}
