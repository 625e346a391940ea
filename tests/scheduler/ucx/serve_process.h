// Shared by the `tandem serve` end-to-end suites: ServeProcess (serve forked into its own
// process group, so its node children can always be killed with it), the node children's pids
// (from serve's "started <id> (pid N)" log lines), GET /v1/load as a struct, and a raw-socket
// SSE client that records when each event arrived and can hang up mid-stream.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

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

#include "tests/scheduler/scheduler_test_util.h"

namespace tandem::testing {

inline std::string Tandem() { return std::string(TANDEM_BINARY_DIR) + "/bin/tandem"; }

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
  bool Start(const std::string& model, int num_prefill, int num_decode, const std::string& tls,
             const std::string& dir, std::string* error) {
    namespace fs = std::filesystem;
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    fs::create_directories(dir);
    out_path_ = dir + "/serve.out";
    err_path_ = dir + "/serve.err";
    const std::vector<std::string> args = {Tandem(), "serve", "--model", model, "--num-prefill",
                                           std::to_string(num_prefill), "--num-decode", std::to_string(num_decode),
                                           "--port", "0", "--node-threads", "1", "--start-timeout-s", "60",
                                           "--log-dir", dir + "/logs"};
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

  // The pid of node child `id` ("decode-0", "prefill-1", ...) from serve's "started <id>
  // (pid N)" line, checked against /proc: it must be in serve's process group. -1 if unknown.
  pid_t NodePid(const std::string& id) const {
    if (pid_ <= 0) return -1;
    const std::string text = ReadFile(err_path_);
    const std::string marker = "started " + id + " (pid ";
    const size_t at = text.find(marker);
    if (at == std::string::npos) return -1;
    const pid_t pid = static_cast<pid_t>(std::atoi(text.c_str() + at + marker.size()));
    if (pid <= 0 || ::getpgid(pid) != pid_) return -1;
    return pid;
  }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const { return ReadFile(err_path_); }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string out_path_, err_path_;
};

// One node as GET /v1/load reports it.
struct NodeLoadView {
  std::string id;
  std::string role;
  std::string state;
  int queued_requests = 0;
  int running_requests = 0;
  int free_kv_blocks = -1;
  int total_kv_blocks = -1;
};

struct LoadView {
  int num_requests = -1;  // the router's requests in flight
  int num_free_kv_blocks = -1;
  std::vector<NodeLoadView> nodes;

  const NodeLoadView* Node(const std::string& id) const {
    for (const NodeLoadView& n : nodes) {
      if (n.id == id) return &n;
    }
    return nullptr;
  }
  int FreeBlocks(const std::string& id) const {
    const NodeLoadView* n = Node(id);
    return n ? n->free_kv_blocks : -1;
  }
  std::string State(const std::string& id) const {
    const NodeLoadView* n = Node(id);
    return n ? n->state : "";
  }
};

// GET /v1/load through `client`; nullopt when there is no parseable answer.
inline std::optional<LoadView> GetLoad(TestHttpClient& client) {
  const HttpReply r = client.Get("/v1/load");
  if (r.status != 200) return std::nullopt;
  const nlohmann::json j = r.json();
  if (!j.is_object() || !j.contains("nodes") || !j["nodes"].is_array()) return std::nullopt;
  LoadView v;
  v.num_requests = j.value("num_requests", -1);
  v.num_free_kv_blocks = j.value("num_free_kv_blocks", -1);
  for (const auto& n : j["nodes"]) {
    NodeLoadView nv;
    nv.id = n.value("id", "");
    nv.role = n.value("role", "");
    nv.state = n.value("state", "");
    nv.queued_requests = n.value("queued_requests", 0);
    nv.running_requests = n.value("running_requests", 0);
    nv.free_kv_blocks = n.value("free_kv_blocks", -1);
    nv.total_kv_blocks = n.value("total_kv_blocks", -1);
    v.nodes.push_back(std::move(nv));
  }
  return v;
}

// A streaming POST over a plain socket ("Connection: close"), read on the caller's thread. It
// keeps the raw bytes and the time each read returned, so a test can tell when the stream
// ended, and Close() hangs up mid-stream as a client that goes away would.
class SseStream {
 public:
  using Clock = std::chrono::steady_clock;

  ~SseStream() { Close(); }

  // Connects to 127.0.0.1:`port` and sends the request; false (with `error`) when either fails.
  bool Open(uint16_t port, const std::string& target, const std::string& body) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fail("connect");
    const std::string req = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                            "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    size_t sent = 0;
    while (sent < req.size()) {
      const ssize_t n = ::send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return Fail("send");
      sent += static_cast<size_t>(n);
    }
    sent_at_ = Clock::now();
    return true;
  }

  // Reads until `done(*this)` holds, the peer closes, or `deadline`. True when `done` held.
  template <typename Pred>
  bool ReadUntil(Pred done, Clock::time_point deadline) {
    while (!done(*this)) {
      if (eof_ || fd_ < 0) return false;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
      if (r < 0 && errno != EINTR) return Fail("poll");
      if (r <= 0) continue;
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        eof_ = true;
        ended_at_ = Clock::now();
        return done(*this);
      }
      raw_.append(buf, static_cast<size_t>(n));
      if (first_byte_at_ == Clock::time_point{}) first_byte_at_ = Clock::now();
      Parse();
      if (done_seen_ && ended_at_ == Clock::time_point{}) ended_at_ = Clock::now();
    }
    return true;
  }
  // Reads to the end of the response (the peer's close) or `deadline`.
  bool ReadToEnd(Clock::time_point deadline) {
    return ReadUntil([](const SseStream& s) { return s.eof(); }, deadline);
  }

  // Ends the connection under a ReadUntil running on another thread (it then sees EOF).
  void Shutdown() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // 0 until the status line arrived.
  int status() const { return status_; }
  // The JSON payloads of the `data:` events so far, without the final "[DONE]".
  const std::vector<nlohmann::json>& events() const { return events_; }
  bool done_seen() const { return done_seen_; }  // "data: [DONE]" arrived
  bool eof() const { return eof_; }
  // [DONE] or the peer's close, whichever came first; epoch while neither did.
  Clock::time_point ended_at() const { return ended_at_; }
  Clock::time_point sent_at() const { return sent_at_; }
  Clock::time_point first_byte_at() const { return first_byte_at_; }
  const std::string& raw() const { return raw_; }
  const std::string& error() const { return error_; }
  // The body of a non-streaming (error) response, once complete.
  std::string body() const { return body_; }

  // The finish_reason of the event that carried one; "" if none did.
  std::string FinishReason() const {
    for (const auto& e : events_) {
      if (e.contains("choices") && e["choices"].is_array() && !e["choices"].empty() &&
          e["choices"][0]["finish_reason"].is_string()) {
        return e["choices"][0]["finish_reason"].get<std::string>();
      }
    }
    return "";
  }
  // The message of an SSE error event; "" if none came.
  std::string ErrorEvent() const {
    for (const auto& e : events_) {
      if (e.contains("error")) return e["error"].value("message", std::string("(no message)"));
    }
    return "";
  }
  int NumTextEvents() const {
    int n = 0;
    for (const auto& e : events_) n += e.contains("choices") ? 1 : 0;
    return n;
  }

 private:
  bool Fail(const char* what) {
    error_ = std::string(what) + ": " + std::strerror(errno);
    Close();
    return false;
  }

  // Re-parses what arrived: status line, headers, then the (chunked or plain) body, whose
  // complete "data: ..." events are collected.
  void Parse() {
    const size_t header_end = raw_.find("\r\n\r\n");
    if (header_end == std::string::npos) return;
    if (status_ == 0 && raw_.rfind("HTTP/1.1 ", 0) == 0) status_ = std::atoi(raw_.c_str() + 9);
    std::string headers = raw_.substr(0, header_end);
    for (char& c : headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool chunked = headers.find("transfer-encoding: chunked") != std::string::npos;
    std::string body;
    size_t at = header_end + 4;
    if (!chunked) {
      body = raw_.substr(at);
    } else {
      while (true) {
        const size_t line_end = raw_.find("\r\n", at);
        if (line_end == std::string::npos) break;
        const size_t size = std::strtoul(raw_.substr(at, line_end - at).c_str(), nullptr, 16);
        if (size == 0 || line_end + 2 + size > raw_.size()) break;
        body.append(raw_, line_end + 2, size);
        at = line_end + 2 + size + 2;
      }
    }
    body_ = body;
    events_.clear();
    size_t pos = 0;
    while (true) {
      const size_t end = body.find("\n\n", pos);
      if (end == std::string::npos) break;
      const std::string event = body.substr(pos, end - pos);
      pos = end + 2;
      if (event.rfind("data: ", 0) != 0) continue;
      const std::string data = event.substr(6);
      if (data == "[DONE]") {
        done_seen_ = true;
        continue;
      }
      events_.push_back(nlohmann::json::parse(data, nullptr, false));
    }
  }

  int fd_ = -1;
  std::string raw_;
  std::string body_;
  std::string error_;
  int status_ = 0;
  bool eof_ = false;
  bool done_seen_ = false;
  std::vector<nlohmann::json> events_;
  Clock::time_point sent_at_{}, first_byte_at_{}, ended_at_{};
};

}  // namespace tandem::testing
