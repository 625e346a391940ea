// Where the decode node's KV reservation is taken, measured on a real 1P+1D cluster: `tandem
// decode`, `tandem prefill` and `tandem router` processes (any build of them: --tandem names the
// binary, so an older build runs the same bench for a before/after), with a DelayProxy adding a
// one-way delay to every control-plane connection (router -> prefill, router -> decode,
// prefill -> decode; KV over UCX is not delayed).
//
//   ttft:     sequential streaming completions; client-side TTFT (request sent -> first SSE data
//             event), mean / p50 / p90.
//   overload: open-loop Poisson arrivals at --rate for --duration-s (set the rate above what the
//             prefill node can compute): how many requests succeed, how many fail and why
//             ("KV never arrived" is a reservation timeout), TTFT of the successes, and the most
//             reservations the decode node held for requests still waiting for their prefill
//             (its LoadReport's queued_requests, polled through GET /v1/load every 20 ms).
//
// Validate first: the cluster must answer one request before anything is timed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/node_process.h"
#include "bench/delay_proxy.h"
#include "common/logging.h"

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using std::chrono::milliseconds;

struct Args {
  std::string tandem = std::string(TANDEM_BENCH_BINARY_DIR) + "/bin/tandem";
  std::string model;
  std::string label = "this build";
  double delay_ms = 1.0;
  int ttft_requests = 30;
  int prompt_len = 256;
  int max_tokens = 8;
  double rate = 0;  // overload phase: requests per second (0: skip it)
  double duration_s = 30;
  int node_threads = 1;
  int budget = 2048;
  int kv_timeout_ms = 10000;
  std::string log_dir;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// One HTTP exchange over a plain socket ("Connection: close"), read to the end.
struct Exchange {
  int status = 0;
  bool error_event = false;
  std::string error;     // what went wrong (HTTP body, error event, socket)
  double ttft_ms = -1;   // request sent -> first SSE data event
  double e2e_ms = -1;
  std::string body;
};

Exchange Http(uint16_t port, const std::string& method, const std::string& target, const std::string& body,
              milliseconds timeout) {
  Exchange x;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) ::close(fd);
    x.error = "connect failed";
    return x;
  }
  const std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                          "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  const auto t0 = Clock::now();
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    x.error = "send failed";
    return x;
  }
  std::string raw;
  const auto deadline = t0 + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      x.error = "timeout";
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100))) <= 0) continue;
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
    if (x.ttft_ms < 0 && raw.find("data: ") != std::string::npos) x.ttft_ms = Ms(Clock::now() - t0);
  }
  x.e2e_ms = Ms(Clock::now() - t0);
  ::close(fd);
  if (raw.size() > 12) x.status = std::atoi(raw.c_str() + 9);
  const size_t hdr = raw.find("\r\n\r\n");
  x.body = hdr == std::string::npos ? raw : raw.substr(hdr + 4);
  if (x.body.find("\"error\"") != std::string::npos) {
    x.error_event = true;
    const size_t m = x.body.find("\"message\"");
    x.error = m == std::string::npos ? x.body.substr(0, 200) : x.body.substr(m, 200);
  } else if (x.status != 200 && x.error.empty()) {
    x.error = "HTTP " + std::to_string(x.status) + ": " + x.body.substr(0, 200);
  }
  return x;
}

std::string CompletionBody(int prompt_len, int max_tokens, uint64_t salt) {
  std::mt19937_64 rng(salt);
  std::vector<int> prompt;
  for (int i = 0; i < prompt_len; ++i) prompt.push_back(300 + static_cast<int>(rng() % 20000));
  return json{{"prompt", prompt}, {"max_tokens", max_tokens}, {"ignore_eos", true},
              {"temperature", 0}, {"stream", true}}
      .dump();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::min<double>(v.size() - 1, p * (v.size() - 1) + 0.5))];
}
double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? -1 : s / v.size();
}

class Cluster {
 public:
  Status Start(const Args& a) {
    const std::string m = a.model;
    const std::string th = std::to_string(a.node_threads);
    ASSIGN_OR_RETURN(decode_, NodeProcess::Spawn("decode", {a.tandem, "decode", "--model", m, "--port", "0",
                                                            "--node-id", "decode-0", "--threads", th,
                                                            "--kv-timeout-ms", std::to_string(a.kv_timeout_ms)},
                                                  a.log_dir + "/decode.log"));
    ASSIGN_OR_RETURN(uint16_t d_port, decode_->WaitListening(milliseconds(120000)));
    const auto delay = std::chrono::microseconds(static_cast<int64_t>(a.delay_ms * 1000));
    to_decode_ = std::make_unique<bench::DelayProxy>(d_port, delay);
    const std::string d_addr = "decode-0=127.0.0.1:" + std::to_string(to_decode_->port());
    ASSIGN_OR_RETURN(prefill_, NodeProcess::Spawn("prefill", {a.tandem, "prefill", "--model", m, "--port", "0",
                                                              "--node-id", "prefill-0", "--threads", th,
                                                              "--max-num-batched-tokens", std::to_string(a.budget),
                                                              "--decode-node", d_addr},
                                                  a.log_dir + "/prefill.log"));
    ASSIGN_OR_RETURN(uint16_t p_port, prefill_->WaitListening(milliseconds(120000)));
    to_prefill_ = std::make_unique<bench::DelayProxy>(p_port, delay);
    ASSIGN_OR_RETURN(router_, NodeProcess::Spawn("router", {a.tandem, "router", "--model", m, "--port", "0",
                                                            "--prefill-node",
                                                            "prefill-0=127.0.0.1:" + std::to_string(to_prefill_->port()),
                                                            "--decode-node", d_addr},
                                                 a.log_dir + "/router.log"));
    ASSIGN_OR_RETURN(port_, router_->WaitListening(milliseconds(60000)));
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (Http(port_, "GET", "/health", "", milliseconds(2000)).status != 200) {
      if (Clock::now() > deadline) return DeadlineExceededError("the cluster did not become ready; logs in " + a.log_dir);
      std::this_thread::sleep_for(milliseconds(50));
    }
    return Status::Ok();
  }
  void Stop() {
    for (auto* p : {&router_, &prefill_, &decode_}) {
      if (*p) (*p)->Terminate(milliseconds(3000));
    }
  }
  uint16_t port() const { return port_; }

 private:
  std::unique_ptr<NodeProcess> decode_, prefill_, router_;
  std::unique_ptr<bench::DelayProxy> to_decode_, to_prefill_;
  uint16_t port_ = 0;
};

// The decode and prefill nodes' queues as GET /v1/load reports them.
struct Queues {
  int decode_queued = 0;   // reservations awaiting their KV
  int prefill_queued = 0;  // requests waiting for or in prefill
};
Queues ReadQueues(uint16_t port) {
  Queues q;
  const Exchange x = Http(port, "GET", "/v1/load", "", milliseconds(2000));
  const json j = json::parse(x.body, nullptr, false);
  if (!j.is_object() || !j.contains("nodes")) return q;
  for (const auto& n : j["nodes"]) {
    if (n.value("role", "") == "decode") q.decode_queued = std::max(q.decode_queued, n.value("queued_requests", 0));
    if (n.value("role", "") == "prefill") q.prefill_queued = std::max(q.prefill_queued, n.value("queued_requests", 0));
  }
  return q;
}

json RunTtft(const Args& a, uint16_t port) {
  std::vector<double> ttft;
  int failed = 0;
  for (int i = 0; i < a.ttft_requests; ++i) {
    const Exchange x = Http(port, "POST", "/v1/completions", CompletionBody(a.prompt_len, a.max_tokens, 1000 + i),
                            milliseconds(60000));
    if (x.status == 200 && !x.error_event && x.ttft_ms >= 0) {
      ttft.push_back(x.ttft_ms);
    } else {
      ++failed;
    }
  }
  std::printf("ttft     %-12s delay %.1f ms, %d x %d-token prompts, sequential: mean %.2f ms, p50 %.2f, p90 %.2f, "
              "min %.2f (%d failed)\n",
              a.label.c_str(), a.delay_ms, a.ttft_requests, a.prompt_len, Mean(ttft), Percentile(ttft, 0.5),
              Percentile(ttft, 0.9), ttft.empty() ? -1 : *std::min_element(ttft.begin(), ttft.end()), failed);
  return json{{"mean_ms", Mean(ttft)}, {"p50_ms", Percentile(ttft, 0.5)}, {"p90_ms", Percentile(ttft, 0.9)},
              {"failed", failed}, {"requests", a.ttft_requests}};
}

json RunOverload(const Args& a, uint16_t port) {
  struct Outcome {
    Exchange x;
  };
  std::vector<std::unique_ptr<Outcome>> outcomes;
  std::vector<std::thread> threads;
  std::atomic<bool> polling{true};
  std::atomic<int> max_decode_queued{0}, max_prefill_queued{0};
  std::thread poller([&] {
    while (polling.load()) {
      const Queues q = ReadQueues(port);
      max_decode_queued = std::max(max_decode_queued.load(), q.decode_queued);
      max_prefill_queued = std::max(max_prefill_queued.load(), q.prefill_queued);
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> gap(a.rate);
  const auto start = Clock::now();
  auto next = start;
  for (int i = 0; Clock::now() - start < std::chrono::duration<double>(a.duration_s); ++i) {
    std::this_thread::sleep_until(next);
    outcomes.push_back(std::make_unique<Outcome>());
    Outcome* o = outcomes.back().get();
    threads.emplace_back([&a, port, o, i] {
      o->x = Http(port, "POST", "/v1/completions", CompletionBody(a.prompt_len, a.max_tokens, 5000 + i),
                  milliseconds(180000));
    });
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
  }
  for (auto& t : threads) t.join();
  polling = false;
  poller.join();
  std::vector<double> ttft;
  std::map<std::string, int> failures;
  for (const auto& o : outcomes) {
    if (o->x.status == 200 && !o->x.error_event) {
      ttft.push_back(o->x.ttft_ms);
      continue;
    }
    std::string why = o->x.error;
    if (why.find("KV never arrived") != std::string::npos) why = "KV never arrived (reservation timeout)";
    else if (o->x.status == 429) why = "429 (refused: overloaded)";
    else if (why.find("no first token") != std::string::npos) why = "no first token before the deadline";
    failures[why.substr(0, 80)]++;
  }
  const int offered = static_cast<int>(outcomes.size());
  std::printf("overload %-12s %.2f req/s for %.0f s: %d offered, %zu ok, %d failed; TTFT of ok p50 %.0f ms, p90 %.0f ms; "
              "most decode reservations awaiting KV %d, most prefill queue %d\n",
              a.label.c_str(), a.rate, a.duration_s, offered, ttft.size(), offered - static_cast<int>(ttft.size()),
              Percentile(ttft, 0.5), Percentile(ttft, 0.9), max_decode_queued.load(), max_prefill_queued.load());
  json f = json::object();
  for (const auto& [why, n] : failures) {
    std::printf("         failed %4d x %s\n", n, why.c_str());
    f[why] = n;
  }
  return json{{"rate", a.rate},           {"offered", offered},
              {"ok", ttft.size()},        {"failures", f},
              {"ttft_p50_ms", Percentile(ttft, 0.5)}, {"ttft_p90_ms", Percentile(ttft, 0.9)},
              {"max_decode_awaiting_kv", max_decode_queued.load()}, {"max_prefill_queued", max_prefill_queued.load()}};
}

int Main(int argc, char** argv) {
  Args a;
  CLI::App app{"Reservation placement: TTFT over a delayed control plane, and overload"};
  app.add_option("--tandem", a.tandem, "The tandem binary to run (an older build for a before/after)")->capture_default_str();
  app.add_option("--model", a.model, "Model directory")->required();
  app.add_option("--label", a.label, "Name of this run in the output")->capture_default_str();
  app.add_option("--delay-ms", a.delay_ms, "One-way delay on every control connection")->capture_default_str();
  app.add_option("--ttft-requests", a.ttft_requests, "Sequential requests for the TTFT figure (0: skip)")
      ->capture_default_str();
  app.add_option("--prompt-len", a.prompt_len)->capture_default_str();
  app.add_option("--max-tokens", a.max_tokens)->capture_default_str();
  app.add_option("--rate", a.rate, "Overload phase: requests per second (0: skip)")->capture_default_str();
  app.add_option("--duration-s", a.duration_s, "Overload phase length")->capture_default_str();
  app.add_option("--node-threads", a.node_threads)->capture_default_str();
  app.add_option("--max-num-batched-tokens", a.budget, "The prefill node's token budget")->capture_default_str();
  app.add_option("--kv-timeout-ms", a.kv_timeout_ms, "The decode node's reservation -> KV bound")->capture_default_str();
  app.add_option("--log-dir", a.log_dir, "Where the node logs go (default: a new temp dir)");
  CLI11_PARSE(app, argc, argv);
  if (a.log_dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tandem-reservation-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return 1;
    a.log_dir = tmpl;
  }
  SetLogLevel("warn");
  Cluster cluster;
  const Status started = cluster.Start(a);
  if (!started.ok()) {
    std::fprintf(stderr, "%s\n", started.ToString().c_str());
    cluster.Stop();
    return 1;
  }
  // Validate before timing: one request must come back whole.
  const Exchange check = Http(cluster.port(), "POST", "/v1/completions", CompletionBody(a.prompt_len, a.max_tokens, 1),
                              milliseconds(60000));
  if (check.status != 200 || check.error_event || check.body.find("[DONE]") == std::string::npos) {
    std::fprintf(stderr, "validation request failed: %s\n", check.error.c_str());
    cluster.Stop();
    return 1;
  }
  json out{{"bench", "reservation"}, {"label", a.label}, {"tandem", a.tandem}, {"delay_ms", a.delay_ms},
           {"prompt_len", a.prompt_len}, {"max_tokens", a.max_tokens}, {"node_threads", a.node_threads},
           {"max_num_batched_tokens", a.budget}, {"kv_timeout_ms", a.kv_timeout_ms}};
  if (a.ttft_requests > 0) out["ttft"] = RunTtft(a, cluster.port());
  if (a.rate > 0) out["overload"] = RunOverload(a, cluster.port());
  std::cout << "JSON " << out.dump() << std::endl;
  cluster.Stop();
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) { return tandem::Main(argc, argv); }
