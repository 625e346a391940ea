// Observability end to end: a real `tandem serve` cluster (1 prefill + 1 decode process, KV over
// UCX) scraped by a real Prometheus (Debian's `prometheus`, on 127.0.0.1, fed the scrape
// configuration serve writes). After N requests, Prometheus's query API must show N TTFT
// observations at the router and KV bytes received on the decode node; every metric the Grafana
// dashboard (deploy/grafana/tandem.json) queries must be among the series Prometheus ingested;
// and promtool must find nothing in any endpoint's exposition but the vLLM-style colon.
// Labelled `ucx`; skips with the reason when prometheus is not installed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cctype>
#include <fstream>
#include <regex>
#include <set>

#include "tests/common/metrics_test_util.h"
#include "tests/scheduler/ucx/serve_process.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::ServeProcess;
using testing::TestHttpClient;

uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", ch);
      out += buf;
    }
  }
  return out;
}

// Prometheus started on 127.0.0.1 in its own process group; killed and reaped on destruction.
class PrometheusProcess {
 public:
  ~PrometheusProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 100 && ::waitpid(pid_, nullptr, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(milliseconds(50));
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool Start(const std::string& config, const std::string& dir, std::string* error) {
    port_ = FreePort();
    log_ = dir + "/prometheus.log";
    const std::vector<std::string> args = {
        "prometheus", "--config.file=" + config, "--storage.tsdb.path=" + dir + "/tsdb",
        "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"};
    pid_ = ::fork();
    if (pid_ == 0) {
      const int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (testing::HttpGet(port_, "/-/ready").status == 200) return true;
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    *error = "prometheus did not become ready; its log:\n" + testing::ReadFile(log_);
    return false;
  }
  // The value of a PromQL query with one scalar-like result; -1 when there is none yet.
  double Query(const std::string& promql) const {
    const auto r = testing::HttpGet(port_, "/api/v1/query?query=" + UrlEncode(promql));
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return -1;
    const auto& result = j["data"]["result"];
    if (!result.is_array() || result.empty()) return -1;
    return std::stod(result[0]["value"][1].get<std::string>());
  }
  std::set<std::string> SeriesNames() const {
    std::set<std::string> names;
    const auto j = nlohmann::json::parse(testing::HttpGet(port_, "/api/v1/label/__name__/values").body, nullptr, false);
    if (!j.is_discarded() && j.contains("data")) {
      for (const auto& n : j["data"]) names.insert(n.get<std::string>());
    }
    return names;
  }
  std::string log() const { return testing::ReadFile(log_); }
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_;
};

// Polls `fn` until it returns true (every 250 ms, up to `limit`).
template <typename Fn>
bool Eventually(Fn&& fn, seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(milliseconds(250));
  }
  return fn();
}

TEST(ClusterMetricsTest, ARealPrometheusScrapesEveryProcess) {
  if (std::system("command -v prometheus >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "prometheus is not installed (Debian package prometheus; scripts/install_deps.sh installs it)";
  }
  testing::SuiteDir suite("tandem_cluster_metrics", 9);
  ASSERT_TRUE(suite.status().ok()) << suite.status().ToString();
  const std::string slo = suite.dir() + "/slo.json";
  std::ofstream(slo) << R"({"classes": [{"name": "interactive", "ttft_ms": 60000, "tpot_ms": 60000, "default": true},
                                      {"name": "impossible", "ttft_ms": 0.001, "priority": 1}]})";
  const std::string scrape = suite.dir() + "/prometheus.yml";
  ServeProcess serve;
  std::string error;
  ASSERT_TRUE(serve.Start(suite.model(), 1, 1, "tcp,self", suite.dir() + "/run", &error,
                          {"--slo-config", slo, "--scrape-config", scrape, "--scrape-interval-s", "1"}))
      << error;
  ASSERT_TRUE(Eventually([&] { return !testing::ReadFile(scrape).empty(); }, seconds(20))) << serve.stderr_text();

  PrometheusProcess prometheus;
  ASSERT_TRUE(prometheus.Start(scrape, suite.dir(), &error)) << error;

  constexpr int kRequests = 6;
  TestHttpClient c(serve.port(), seconds(60));
  for (int i = 0; i < kRequests; ++i) {
    nlohmann::json body = {{"model", "tiny"},
                           {"prompt", "tell me about request " + std::to_string(i)},
                           {"max_tokens", 5},
                           {"ignore_eos", true}};
    if (i % 3 == 0) body["slo_class"] = "impossible";  // misses its TTFT: slo_missed_total has a series
    const auto r = c.Post("/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(c.Request("POST", "/v1/completions", "{not json").status, 400);

  EXPECT_TRUE(Eventually(
      [&] { return prometheus.Query("sum(tandem:time_to_first_token_seconds_count{role=\"router\"})") == kRequests; },
      seconds(60)))
      << "TTFT count " << prometheus.Query("sum(tandem:time_to_first_token_seconds_count{role=\"router\"})")
      << "; prometheus log:\n"
      << prometheus.log();
  EXPECT_TRUE(
      Eventually([&] { return prometheus.Query("sum(tandem:kv_transfer_bytes_count{role=\"decode\"})") == kRequests; },
                 seconds(30)));
  EXPECT_GT(prometheus.Query("sum(tandem:kv_transfer_bytes_sum{role=\"decode\"})"), 0);
  EXPECT_EQ(prometheus.Query("sum(tandem:generation_tokens_total{role=\"decode\"})"), kRequests * 4);  // + 1 each on P
  EXPECT_EQ(prometheus.Query("sum(tandem:request_rejections_total{reason=\"invalid_json\"})"), 1);
  EXPECT_TRUE(Eventually([&] { return prometheus.Query("count(up{job=\"tandem\"} == 1)") == 3; }, seconds(20)))
      << testing::HttpGet(prometheus.port(), "/api/v1/targets").body;

  // Every metric the dashboard queries is one the processes export (and Prometheus ingested).
  std::ifstream dashboard_file(std::string(TANDEM_SOURCE_DIR) + "/deploy/grafana/tandem.json");
  const auto dashboard = nlohmann::json::parse(dashboard_file, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded());
  std::set<std::string> queried;
  const std::regex name("tandem:[a-z_][a-z0-9_]*");
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel["targets"]) {
      const std::string expr = target["expr"];
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name); it != std::sregex_iterator(); ++it) {
        queried.insert(it->str());
      }
    }
  }
  EXPECT_GE(queried.size(), 20u);
  std::set<std::string> ingested;
  EXPECT_TRUE(Eventually(
      [&] {
        ingested = prometheus.SeriesNames();
        for (const std::string& q : queried) {
          if (!ingested.count(q)) return false;
        }
        return true;
      },
      seconds(20)));
  for (const std::string& q : queried) EXPECT_TRUE(ingested.count(q)) << q << " is not exported";

  // promtool on every endpoint of the scrape configuration.
  const std::string config = testing::ReadFile(scrape);
  const std::regex target("'127\\.0\\.0\\.1:([0-9]+)'");
  int endpoints = 0;
  for (auto it = std::sregex_iterator(config.begin(), config.end(), target); it != std::sregex_iterator(); ++it) {
    const auto r = testing::HttpGet(static_cast<uint16_t>(std::stoi((*it)[1].str())), "/metrics");
    ASSERT_EQ(r.status, 200);
    const auto check = testing::PromtoolCheck(r.body, suite.dir() + "/scrape.txt");
    if (check.available) EXPECT_EQ(check.problems, "") << (*it)[1].str();
    ++endpoints;
  }
  EXPECT_EQ(endpoints, 3);
}

}  // namespace
}  // namespace tandem
