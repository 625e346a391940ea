// Chaos under load: a real `tandem serve` cluster (2 prefill + 2 decode processes, KV over UCX
// tcp,self, the router in the serve process) under steady streaming load while a seeded RNG
// injects a fault every 3-6 s:
//   - kill -9 of a random node (serve restarts it on its port after its backoff);
//   - SIGSTOP of a random node for 1-3 s, then SIGCONT (around the control plane's 3 s idle
//     timeout, so some stops look like a slow node and some like a dead one);
//   - a cut connection mid-transfer: while a prefill node runs a prompt (the load has long
//     ones, whose last chunk's layers go to the decode node over UCX as they finish), every
//     TCP connection between it and the decode nodes (the control connection that carries
//     ReserveKv/KvReady, and UCX's tcp transport carrying the KV) is shut down from inside the
//     prefill process: the test takes a duplicate of each socket with pidfd_getfd(2) (the node
//     is our descendant, so ptrace access is allowed) and calls shutdown(SHUT_RDWR) on it. Both
//     processes live on and see a real cut (EOF / reset) rather than a death, which is the fault
//     a kill cannot produce. Where pidfd_getfd is unavailable (kernel < 5.6, a seccomp or LSM
//     refusal) the prefill node is killed -9 at that moment instead, and the summary says so.
// At most one node per role is faulted at a time (the other keeps the cluster serving), and a
// node is killed at most once per kKillSpacing, so serve's restart backoff stays at 1 s and its
// limit (5 restarts per node per minute) is never reached.
//
// Invariants: every request ends within kRequestTimeout with finish_reason + [DONE], an SSE
// error event + [DONE], or an HTTP error status with an OpenAI error body; once load and faults
// stop, every node is ready with all its KV blocks free (the nodes' own reports in /v1/load;
// a restarted node has a fresh pool, so free == total, and a node never restarted is back to
// its start value); every killed node rejoined (a new pid) and every node takes new requests
// (its own metrics counters move); the router's RSS stays under start + kRssGrowthBoundMiB.
// The summary line ("[ chaos ] ...") gives requests, ok, failed (error rate), faults by kind,
// restarts observed and the router's RSS.
//
// TANDEM_CHAOS_SECONDS (60: CI) sets how long faults and load run; TANDEM_CHAOS_SEED (1) the
// seed, printed; TANDEM_CHAOS_LOG_DIR keeps the logs. scripts/chaos.sh runs the long version.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/metrics_test_util.h"
#include "tests/frontend/serving_test_util.h"
#include "tests/scheduler/ucx/cluster_test_util.h"
#include "tests/scheduler/ucx/load_view.h"
#include "tests/scheduler/ucx/serve_process.h"
#include "tests/scheduler/ucx/sse_stream.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::LoadView;
using testing::SseStream;

// A request must end this long after it was sent. The router's own bounds are below it
// (--first-token-timeout-s 20, --inter-token-timeout-s 10), so only a hang can pass it; a
// passing run never waits for it.
constexpr seconds kRequestTimeout{60};
// One kill per node per 70 s: serve resets a node's restart backoff to 1 s once it has stayed
// up 60 s, and allows 5 restarts per node per minute; this stays at 1 s and 1 a minute.
constexpr seconds kKillSpacing{70};
// The router keeps per-request state only while a request is in flight (a handful here, four
// clients) plus bounded metrics histograms; its start is ~30-60 MiB. 128 MiB of growth is far
// above allocator caches and thread stacks for the connections it holds, and far below what a
// per-request leak over thousands of requests (each holds a prompt, token stream and record)
// would add in a 10-minute run.
constexpr int64_t kRssGrowthBoundMiB = 128;
constexpr int kClients = 4;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// VmRSS of `pid` in KiB; -1 when unreadable.
int64_t RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return -1;
}

// --- Cutting a connection from outside a process ------------------------------------------

// Socket inode -> fd of every socket `pid` holds.
std::map<uint64_t, int> SocketFds(pid_t pid) {
  std::map<uint64_t, int> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const std::string target = fs::read_symlink(e.path(), ec).string();
    if (ec || target.rfind("socket:[", 0) != 0) continue;
    out[std::stoull(target.substr(8))] = std::atoi(e.path().filename().c_str());
  }
  return out;
}

// Established TCP connections (/proc/net/tcp and tcp6): inode -> "local remote" (hex, as the
// kernel prints them).
std::map<uint64_t, std::pair<std::string, std::string>> TcpConnections(pid_t pid) {
  std::map<uint64_t, std::pair<std::string, std::string>> out;
  for (const char* file : {"tcp", "tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/" + file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout;
      uint64_t inode = 0;
      ls >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state == "01" && inode != 0) out[inode] = {local, remote};  // 01: ESTABLISHED
    }
  }
  return out;
}

// The fds in `a` of TCP connections whose other end is held by one of `peers`.
std::vector<int> ConnectionFds(pid_t a, const std::vector<pid_t>& peers) {
  const auto tcp = TcpConnections(a);
  std::set<std::pair<std::string, std::string>> peer_ends;  // (local, remote) as the peer sees it
  for (pid_t p : peers) {
    for (const auto& [inode, fd] : SocketFds(p)) {
      const auto it = tcp.find(inode);
      if (it != tcp.end()) peer_ends.insert(it->second);
    }
  }
  std::vector<int> fds;
  for (const auto& [inode, fd] : SocketFds(a)) {
    const auto it = tcp.find(inode);
    if (it != tcp.end() && peer_ends.count({it->second.second, it->second.first})) fds.push_back(fd);
  }
  return fds;
}

// shutdown(SHUT_RDWR) on each of `fds` inside `pid` (through duplicates taken with
// pidfd_getfd: they share the socket). Returns how many were cut; -1 (errno set) when the
// kernel refused us the sockets.
int CutConnections(pid_t pid, const std::vector<int>& fds) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return -1;
  int cut = 0;
  for (int fd : fds) {
    const int dup = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
    if (dup < 0) {
      if (errno == EBADF) continue;  // closed meanwhile
      ::close(pidfd);
      return -1;
    }
    if (::shutdown(dup, SHUT_RDWR) == 0) ++cut;
    ::close(dup);
  }
  ::close(pidfd);
  return cut;
}

// --- Load --------------------------------------------------------------------------------

// `message` with each run of digits (ids, ports, layers) as one '#', so that messages group.
std::string Normalized(const std::string& message) {
  std::string out;
  for (char c : message) {
    const bool digit = c >= '0' && c <= '9';
    if (!digit) {
      out += c;
    } else if (out.empty() || out.back() != '#') {
      out += '#';
    }
  }
  return out;
}

// How requests ended.
struct LoadStats {
  struct Seen {
    int count = 0;
    double first_s = 0, last_s = 0;  // since the load started
  };
  Clock::time_point start = Clock::now();
  std::mutex mu;
  int requests = 0;
  int ok = 0;
  int failed = 0;                       // an SSE error event or an HTTP error with an OpenAI error body
  std::map<std::string, Seen> errors;   // message (digit runs as '#') -> when and how often
  std::vector<std::string> violations;  // hung, or ended in a way no client can read
  int64_t worst_ms = 0;

  // False when the request failed or broke an invariant.
  bool Record(const SseStream& s, Clock::time_point sent) {
    std::lock_guard<std::mutex> lock(mu);
    ++requests;
    const bool ended = s.ended_at() != Clock::time_point{};
    const int64_t ms = std::chrono::duration_cast<milliseconds>((ended ? s.ended_at() : Clock::now()) - sent).count();
    worst_ms = std::max(worst_ms, ms);
    std::string error;
    if (!ended) {
      Violation("no end within " + std::to_string(kRequestTimeout.count()) + " s", s);
    } else if (s.status() == 200 && !s.FinishReason().empty() && s.done_seen() && s.ErrorEvent().empty()) {
      ++ok;
    } else if (s.status() == 200 && !s.ErrorEvent().empty() && s.done_seen()) {
      error = "SSE error: " + Normalized(s.ErrorEvent());
    } else if (s.status() >= 400) {
      const nlohmann::json body = nlohmann::json::parse(s.body(), nullptr, false);
      if (body.is_object() && body.contains("error") && body["error"].is_object() &&
          body["error"].contains("message")) {
        error = "HTTP " + std::to_string(s.status()) + ": " + Normalized(body["error"]["message"].get<std::string>());
      } else {
        Violation("HTTP error without an OpenAI error body", s);
      }
    } else {
      Violation("ended without a finish reason or an error event", s);
    }
    if (!error.empty()) {
      ++failed;
      Seen& seen = errors[error];
      const double at = std::chrono::duration<double>(s.ended_at() - start).count();
      if (seen.count++ == 0) seen.first_s = at;
      seen.last_s = at;
    }
    return error.empty() && ended && s.status() == 200 && !s.FinishReason().empty();
  }
  void Violation(const std::string& what, const SseStream& s) {
    if (violations.size() < 5)
      violations.push_back(what + ":\n" + s.error() + s.raw().substr(0, 2000));
    else
      violations.push_back(what);
  }
};

// One client: streaming completions back to back until `stop` (250 ms apart after a failure), a mix of short and long
// prompts and outputs (the long prompts keep the prefill nodes pushing KV).
void RunClient(uint16_t port, uint64_t seed, const std::atomic<bool>& stop, LoadStats* stats) {
  struct Shape {
    int prompt_tokens;
    int max_tokens;
  };
  static constexpr Shape kShapes[] = {{8, 64}, {40, 200}, {120, 32}, {600, 16}, {1200, 8}, {1800, 4}};
  std::mt19937_64 rng(seed);
  for (int i = 0; !stop.load(); ++i) {
    const Shape shape = kShapes[rng() % std::size(kShapes)];
    const int salt = static_cast<int>(rng() % 100000);
    SseStream s;
    const auto sent = Clock::now();
    if (!s.Open(port, "/v1/completions",
                testing::CompletionBody(testing::Prompt(shape.prompt_tokens, salt), shape.max_tokens, true, salt))) {
      {
        std::lock_guard<std::mutex> lock(stats->mu);
        ++stats->requests;
        stats->Violation("the router refused the connection", s);
      }
      std::this_thread::sleep_for(milliseconds(100));
      continue;
    }
    s.ReadToEnd(sent + kRequestTimeout);
    // After a failure, a pause as a real client's retry would make; without it the error rate
    // would count how fast a 503 comes back while a node is away.
    if (!stats->Record(s, sent)) std::this_thread::sleep_for(milliseconds(250));
  }
}

// --- Faults ------------------------------------------------------------------------------

struct NodeFaults {
  Clock::time_point last_kill{};
  pid_t killed_pid = -1;  // awaiting a new pid; -1 when none
  int kills = 0;
  bool rejoined_after_kill = true;
};

// SIGCONT for a stopped node, whatever happens.
struct ContinueGuard {
  pid_t pid = -1;
  ~ContinueGuard() {
    if (pid > 0) ::kill(pid, SIGCONT);
  }
};

double CounterOf(uint16_t metrics_port, const std::string& family) {
  const testing::RawReply r = testing::HttpGet(metrics_port, "/metrics");
  return r.status == 200 ? testing::SampleValue(r.body, "tandem:" + family + "{") : -1;
}

class ClusterChaosTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_ = new testing::SuiteDir("tandem_cluster_chaos", 5);
    ASSERT_TRUE(suite_->status().ok()) << suite_->status().ToString();
  }
  // TANDEM_CHAOS_LOG_DIR: serve's and every node's logs (restarted nodes' earlier ones as
  // *.log.prev) are copied there before the scratch directory goes.
  static void TearDownTestSuite() {
    const char* keep = std::getenv("TANDEM_CHAOS_LOG_DIR");
    if (keep && *keep) {
      std::error_code ec;
      fs::create_directories(keep, ec);
      fs::copy(suite_->dir() + "/chaos", keep, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
      std::printf("[ chaos ] logs in %s%s\n", keep, ec ? (" (copy failed: " + ec.message() + ")").c_str() : "");
    }
    delete suite_;
  }
  static testing::SuiteDir* suite_;
};
testing::SuiteDir* ClusterChaosTest::suite_ = nullptr;

TEST_F(ClusterChaosTest, SteadyLoadSurvivesKillsStopsAndCutConnections) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the fault log as it happens, also into a file
  const int run_s = std::max(1, EnvInt("TANDEM_CHAOS_SECONDS", 60));
  const char* seed_env = std::getenv("TANDEM_CHAOS_SEED");
  const uint64_t seed = seed_env && *seed_env ? std::strtoull(seed_env, nullptr, 10) : 1;
  std::printf("[ chaos ] TANDEM_CHAOS_SECONDS=%d TANDEM_CHAOS_SEED=%llu\n", run_s,
              static_cast<unsigned long long>(seed));

#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine keeps freed memory (256 MiB by default) and would read as growth: serve
  // and its nodes (started below, they inherit the environment) get a small one, so RSS still
  // bounds the router's memory.
  const char* asan = std::getenv("ASAN_OPTIONS");
  ::setenv("ASAN_OPTIONS", ((asan && *asan ? std::string(asan) + ":" : "") + "quarantine_size_mb=16").c_str(), 1);
#endif
  testing::ServeProcess serve;
  std::vector<std::string> ids;
  LoadView start;
  ASSERT_NO_FATAL_FAILURE(
      testing::StartIdleCluster(serve, suite_->model(), "tcp,self", suite_->dir() + "/chaos", 2, 2, &ids, &start,
                                {"--first-token-timeout-s", "20", "--inter-token-timeout-s", "10"}));
  const uint16_t port = serve.port();
  testing::TestHttpClient admin(port, seconds(10));
  auto role_of = [](const std::string& id) { return id.substr(0, id.find('-')); };
  auto pids_of = [&](const std::string& role) {
    std::vector<pid_t> pids;
    for (const std::string& id : ids) {
      if (role_of(id) == role && serve.NodePid(id) > 0) pids.push_back(serve.NodePid(id));
    }
    return pids;
  };
  std::map<std::string, pid_t> start_pids;
  for (const std::string& id : ids) start_pids[id] = serve.NodePid(id);
  const int64_t rss_start = RssKiB(serve.pid());
  int64_t rss_peak = rss_start;
  ASSERT_GT(rss_start, 0);

  // Load.
  LoadStats stats;
  std::atomic<bool> stop_load{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back(RunClient, port, seed * 1000003 + c, std::cref(stop_load), &stats);
  struct JoinClients {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~JoinClients() {
      stop = true;
      for (auto& t : threads) t.join();
    }
  } join_clients{stop_load, clients};

  // Faults.
  std::mt19937_64 rng(seed);
  std::map<std::string, NodeFaults> faults;
  std::vector<int> kinds;  // 0: kill -9, 1: SIGSTOP, 2: cut
  int kills = 0, stops = 0, cuts = 0, cut_connections = 0, cuts_mid_prefill = 0, cuts_by_kill = 0, skipped = 0;
  bool cut_unavailable = false;
  std::string cut_refusal;
  auto note_rejoins = [&](const LoadView& v) {
    for (auto& [id, f] : faults) {
      if (f.killed_pid <= 0 || v.State(id) != "ready") continue;
      const pid_t now_pid = serve.NodePid(id);
      if (now_pid > 0 && now_pid != f.killed_pid) {
        f.killed_pid = -1;
        f.rejoined_after_kill = true;
      }
    }
  };
  // Ready, and so is every other node of its role (one node per role faulted at a time).
  auto eligible = [&](const LoadView& v, const std::string& id) {
    for (const std::string& other : ids) {
      if (role_of(other) == role_of(id) && v.State(other) != "ready") return false;
    }
    return serve.NodePid(id) > 0 && faults[id].killed_pid < 0;
  };
  auto kill_node = [&](const std::string& id, Clock::time_point now) {
    NodeFaults& f = faults[id];
    f.killed_pid = serve.NodePid(id);
    f.rejoined_after_kill = false;
    f.last_kill = now;
    ++f.kills;
    ::kill(f.killed_pid, SIGKILL);
  };
  const auto load_start = stats.start;
  auto at_s = [&] { return std::chrono::duration<double>(Clock::now() - load_start).count(); };
  const auto faults_end = load_start + seconds(run_s);
  while (Clock::now() < faults_end) {
    const auto wake = std::min(faults_end, Clock::now() + milliseconds(3000 + rng() % 3000));
    while (Clock::now() < wake) {
      std::this_thread::sleep_for(milliseconds(200));
      rss_peak = std::max(rss_peak, RssKiB(serve.pid()));
      if (auto v = testing::GetLoad(admin)) note_rejoins(*v);
    }
    if (Clock::now() >= faults_end) break;
    const auto v = testing::GetLoad(admin);
    if (!v) {
      ++skipped;
      continue;
    }
    note_rejoins(*v);
    // Kinds come in shuffled rounds of all three, so that even a short run sees each.
    if (kinds.empty()) {
      kinds = {0, 1, 2};
      std::shuffle(kinds.begin(), kinds.end(), rng);
    }
    const int kind = kinds.back();
    kinds.pop_back();
    const std::string target = ids[rng() % ids.size()];
    const auto now = Clock::now();
    if (kind == 0) {  // kill -9
      const NodeFaults& f = faults[target];
      if (!eligible(*v, target) || (f.kills > 0 && now - f.last_kill < kKillSpacing)) {
        ++skipped;
        continue;
      }
      std::printf("[ chaos ] %6.1f s  kill -9 %s (pid %d)\n", at_s(), target.c_str(), serve.NodePid(target));
      kill_node(target, now);
      ++kills;
    } else if (kind == 1) {  // SIGSTOP for 1-3 s
      if (!eligible(*v, target)) {
        ++skipped;
        continue;
      }
      const int stop_ms = 1000 + static_cast<int>(rng() % 2001);
      ContinueGuard guard{serve.NodePid(target)};
      std::printf("[ chaos ] %6.1f s  SIGSTOP %s for %d ms\n", at_s(), target.c_str(), stop_ms);
      if (::kill(guard.pid, SIGSTOP) != 0) continue;
      ++stops;
      std::this_thread::sleep_for(milliseconds(stop_ms));
    } else {  // cut a prefill node's connections to the decode nodes while it prefills
      const std::string p = "prefill-" + std::to_string(rng() % 2);
      bool all_ready = true;
      for (const std::string& id : ids) all_ready = all_ready && v->State(id) == "ready";
      if (!all_ready || !eligible(*v, p)) {
        ++skipped;
        continue;
      }
      LoadView busy;
      const bool mid_prefill = testing::WaitLoad(
          admin,
          [&](const LoadView& l) {
            const auto* n = l.Node(p);
            return n && n->running_requests > 0;
          },
          Clock::now() + seconds(5), &busy);
      const pid_t ppid = serve.NodePid(p);
      int cut = -1;
      if (!cut_unavailable) {
        cut = CutConnections(ppid, ConnectionFds(ppid, pids_of("decode")));
        if (cut < 0) {
          cut_unavailable = true;
          cut_refusal = std::strerror(errno);
        }
      }
      if (cut < 0) {  // no pidfd_getfd here: the nearest real fault is the prefill node's death
        if (faults[p].kills > 0 && now - faults[p].last_kill < kKillSpacing) {
          ++skipped;
          continue;
        }
        std::printf("[ chaos ] %6.1f s  cut %s by kill -9 (pidfd_getfd: %s)%s\n", at_s(), p.c_str(),
                    cut_refusal.c_str(), mid_prefill ? " mid-prefill" : "");
        kill_node(p, now);
        ++cuts_by_kill;
      } else {
        std::printf("[ chaos ] %6.1f s  cut %d connections between %s and the decode nodes%s\n", at_s(), cut, p.c_str(),
                    mid_prefill ? " mid-prefill" : "");
        cut_connections += cut;
      }
      ++cuts;
      cuts_mid_prefill += mid_prefill ? 1 : 0;
    }
  }

  // Drain: clients finish what they sent (each bounded by kRequestTimeout).
  stop_load = true;
  for (auto& t : clients) t.join();
  clients.clear();
  const double load_s = at_s();

  // Every node ready with its whole pool free, and nothing in flight.
  LoadView end;
  const bool idle = testing::WaitLoad(
      admin, [&](const LoadView& l) { return testing::Idle(l, ids); }, Clock::now() + seconds(90), &end);
  note_rejoins(end);
  EXPECT_TRUE(idle) << testing::Describe(end) << "\n" << serve.stderr_text();
  for (const std::string& id : ids) {
    const testing::NodeLoadView* n = end.Node(id);
    ASSERT_NE(n, nullptr) << id;
    EXPECT_EQ(n->free_kv_blocks, n->total_kv_blocks) << id << ": " << testing::Describe(end);
    if (serve.NodePid(id) == start_pids[id]) {
      EXPECT_EQ(n->free_kv_blocks, start.FreeBlocks(id)) << id;
    }
  }

  // Every killed node came back with a new process.
  const std::string log = serve.stderr_text();
  int restarts = 0;
  for (const std::string& id : ids) {
    const std::string marker = "restarting " + id + " on port";
    for (size_t at = log.find(marker); at != std::string::npos; at = log.find(marker, at + 1)) ++restarts;
  }
  for (const auto& [id, f] : faults) {
    EXPECT_TRUE(f.rejoined_after_kill) << id << " was killed (pid " << f.killed_pid << ") and never rejoined\n"
                                       << testing::Describe(end) << "\n"
                                       << log;
  }
  EXPECT_GE(restarts, kills + cuts_by_kill) << log;

  // Every node takes new work: rounds of concurrent requests (every one must be served) until
  // each node's own counter moved.
  std::map<std::string, double> before;
  auto counter = [&](const std::string& id) {
    return CounterOf(serve.NodeMetricsPort(id),
                     role_of(id) == "prefill" ? "prompt_tokens_total" : "generation_tokens_total");
  };
  for (const std::string& id : ids) before[id] = counter(id);
  std::set<std::string> served;
  int final_requests = 0;
  for (int round = 0; round < 8 && served.size() < ids.size(); ++round) {
    std::vector<testing::HttpReply> replies(8);
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        testing::TestHttpClient c(port, seconds(60));
        replies[i] =
            c.Post("/v1/completions", nlohmann::json::parse(testing::CompletionBody(
                                          testing::Prompt(300, 9000 + round * 8 + i), 24, false, round * 8 + i)));
      });
    }
    for (auto& t : threads) t.join();
    for (const testing::HttpReply& r : replies) {
      ++final_requests;
      EXPECT_EQ(r.status, 200) << r.error << r.body;
      if (r.status == 200) {
        EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "length") << r.body;
      }
    }
    for (const std::string& id : ids) {
      if (counter(id) > before[id]) served.insert(id);
    }
  }
  for (const std::string& id : ids) EXPECT_TRUE(served.count(id)) << id << " took no request after the chaos";

  // The router's memory.
  const int64_t rss_end = RssKiB(serve.pid());
  rss_peak = std::max(rss_peak, rss_end);
  EXPECT_LT(rss_peak, rss_start + kRssGrowthBoundMiB * 1024)
      << "router RSS grew from " << rss_start << " KiB to " << rss_peak << " KiB";

  const std::string by_kill = cuts_by_kill ? ", " + std::to_string(cuts_by_kill) + " by kill -9" : "";
  std::lock_guard<std::mutex> lock(stats.mu);
  for (const std::string& what : stats.violations) ADD_FAILURE() << what;
  std::printf("[ chaos ] errors by message:\n");
  for (const auto& [message, seen] : stats.errors) {
    std::printf("[ chaos ]   %5d  (%.1f-%.1f s)  %s\n", seen.count, seen.first_s, seen.last_s, message.c_str());
  }
  std::printf(
      "[ chaos ] seed=%llu load_s=%.0f requests=%d ok=%d failed=%d error_rate=%.2f%% violations=%zu "
      "worst_request_ms=%lld faults: kill=%d stop=%d cut=%d (mid-prefill %d, %d connections%s) skipped=%d "
      "restarts=%d final_requests=%d router_rss_mib: start=%.1f peak=%.1f end=%.1f\n",
      static_cast<unsigned long long>(seed), load_s, stats.requests, stats.ok, stats.failed,
      stats.requests ? 100.0 * stats.failed / stats.requests : 0.0, stats.violations.size(),
      static_cast<long long>(stats.worst_ms), kills, stops, cuts, cuts_mid_prefill, cut_connections, by_kill.c_str(),
      skipped, restarts, final_requests, rss_start / 1024.0, rss_peak / 1024.0, rss_end / 1024.0);
  EXPECT_GT(stats.ok, 0);
  serve.Stop();
}

}  // namespace
}  // namespace tandem
