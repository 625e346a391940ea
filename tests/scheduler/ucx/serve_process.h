// Shared by the `tandem serve` end-to-end suites: ServeProcess (serve forked into its own
// process group, so its node children can always be killed with it) and the node children's
// pids (from serve's "started <id> (pid N)" log lines). load_view.h reads GET /v1/load,
// sse_stream.h is a raw-socket SSE client.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/make_model.h"
#include "tests/frontend/serving_test_util.h"

namespace tandem::testing {

inline std::string Tandem() { return std::string(TANDEM_BINARY_DIR) + "/bin/tandem"; }

// A suite's scratch directory, <tmp>/<name>_<pid>, holding the tiny model made with `seed` in
// tiny/; removed with it. Suites make one in SetUpTestSuite.
class SuiteDir {
 public:
  SuiteDir(const std::string& name, uint64_t seed)
      : dir_((std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string()) {
    std::filesystem::remove_all(dir_);
    MakeModelOptions o;
    o.preset = "tiny";
    o.seed = seed;
    o.out_dir = model();
    status_ = MakeModel(o);
  }
  ~SuiteDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const Status& status() const { return status_; }
  const std::string& dir() const { return dir_; }
  std::string model() const { return dir_ + "/tiny"; }

 private:
  std::string dir_;
  Status status_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `tandem serve` as a child in its own process group (its node children join it).
class ServeProcess {
 public:
  ~ServeProcess() { Stop(); }

  // Starts serve with UCX_TLS=`tls` and waits (bounded) for its router port and /health.
  // `extra`: more serve flags.
  bool Start(const std::string& model, int num_prefill, int num_decode, const std::string& tls,
             const std::string& dir, std::string* error, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {Tandem(), "serve", "--model", model, "--num-prefill",
                                     std::to_string(num_prefill), "--num-decode", std::to_string(num_decode),
                                     "--port", "0", "--node-threads", "1", "--start-timeout-s", "60",
                                     "--log-dir", dir + "/logs"};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartCommand(args, tls, dir, error);
  }

  // Any `tandem` server command that prints "listening on http://127.0.0.1:PORT" and answers
  // /health (serve, worker, router), started the same way.
  bool StartCommand(const std::vector<std::string>& args, const std::string& tls, const std::string& dir,
                    std::string* error) {
    namespace fs = std::filesystem;
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    fs::create_directories(dir);
    out_path_ = dir + "/serve.out";
    err_path_ = dir + "/serve.err";
    pid_ = ::fork();
    if (pid_ < 0) {
      *error = "fork failed";
      return false;
    }
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::setenv("UCX_TLS", tls.c_str(), 1);
      const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0 || err < 0) ::_exit(126);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // also from here, so the group exists before any kill
    const auto deadline = std::chrono::steady_clock::now() + seconds(90);
    const std::string marker = "listening on http://127.0.0.1:";
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string out = ReadFile(out_path_);
      const size_t at = out.find(marker);
      if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
        port_ = static_cast<uint16_t>(std::stoi(out.substr(at + marker.size())));
        break;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        *error = "serve exited during start-up; stderr:\n" + ReadFile(err_path_);
        return false;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    if (port_ == 0) {
      *error = "no router port within 90 s; stderr:\n" + ReadFile(err_path_);
      return false;
    }
    TestHttpClient c(port_, seconds(10));
    while (std::chrono::steady_clock::now() < deadline) {
      if (c.Get("/health").status == 200) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    *error = "router never healthy; stderr:\n" + ReadFile(err_path_);
    return false;
  }

  // SIGTERM (serve stops its nodes), then SIGKILL to the whole group after 15 s; always reaped.
  void Stop() {
    using std::chrono::milliseconds;
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    bool reaped = false;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped = true;
        break;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    ::kill(-pid_, SIGKILL);  // whatever is left of the group (nodes of a killed serve)
    if (!reaped) ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // The pid of node child `id` ("decode-0", "prefill-1", ...) from serve's last "started <id>
  // (pid N)" line (a restarted node logs a new one), checked against /proc: it must be in
  // serve's process group. -1 if unknown.
  pid_t NodePid(const std::string& id) const {
    if (pid_ <= 0) return -1;
    const std::string text = ReadFile(err_path_);
    const std::string marker = "started " + id + " (pid ";
    const size_t at = text.rfind(marker);
    if (at == std::string::npos) return -1;
    const pid_t pid = static_cast<pid_t>(std::atoi(text.c_str() + at + marker.size()));
    if (pid <= 0 || ::getpgid(pid) != pid_) return -1;
    return pid;
  }

  // Node `id`'s metrics port from the endpoints serve prints once it serves ("metrics
  // http://127.0.0.1:PORT/metrics  (<id>)"); a restarted node keeps it. 0 if not printed.
  uint16_t NodeMetricsPort(const std::string& id) const {
    const std::string text = ReadFile(err_path_);
    const size_t end = text.find("/metrics  (" + id + ")");
    if (end == std::string::npos) return 0;
    const size_t colon = text.rfind(':', end);
    return colon == std::string::npos ? 0 : static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1));
  }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const { return ReadFile(err_path_); }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string out_path_, err_path_;
};

}  // namespace tandem::testing
