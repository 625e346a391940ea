#include "apps/node_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace tandem {

namespace {
// The port of "<prefix>[http://]HOST:PORT[/path]".
Result<uint16_t> ParsePortLine(std::string_view line, std::string_view prefix) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
  if (line.substr(0, prefix.size()) != prefix) {
    return InvalidArgumentError("not a '" + std::string(prefix) + "' line: " + std::string(line));
  }
  std::string_view addr = line.substr(prefix.size());
  if (addr.substr(0, 7) == "http://") addr.remove_prefix(7);
  if (const size_t slash = addr.find('/'); slash != std::string_view::npos) addr = addr.substr(0, slash);
  const size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return InvalidArgumentError("no HOST:PORT in: " + std::string(line));
  const std::string_view port_text = addr.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return InvalidArgumentError("bad port in: " + std::string(line));
  }
  return static_cast<uint16_t>(port);
}
}  // namespace

Result<uint16_t> ParseListeningLine(std::string_view line) { return ParsePortLine(line, "listening on "); }
Result<uint16_t> ParseMetricsLine(std::string_view line) { return ParsePortLine(line, "metrics on "); }

Result<std::unique_ptr<NodeProcess>> NodeProcess::Spawn(std::string name, std::vector<std::string> argv,
                                                        std::string log_path) {
  if (argv.empty()) return InvalidArgumentError("NodeProcess: empty argv");
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return NotFoundError("cannot create " + log_path + ": " + std::strerror(errno));
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(log_fd);
    return UnavailableError(std::string("pipe: ") + std::strerror(errno));
  }
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    ::close(out[0]);
    ::close(out[1]);
    return UnavailableError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // the parent died before prctl took effect
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    // Nothing else of ours crosses exec: the router's sockets (its HTTP listener, client
    // connections, connections to the other nodes) are not close-on-exec, and a node restarted
    // while the router runs would otherwise hold copies of them, keeping a connection open after
    // the router closed it, or cutting it under the router when the node shuts its copy down.
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
      for (int fd = 3; fd < 65536; ++fd) ::close(fd);  // kernels before 5.9
    }
    ::execv(cargv[0], cargv.data());
    const char msg[] = "exec failed\n";
    (void)!::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(log_fd);
  ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
  std::unique_ptr<NodeProcess> child(new NodeProcess());
  child->name_ = std::move(name);
  child->log_path_ = std::move(log_path);
  child->pid_ = pid;
  child->stdout_fd_ = out[0];
  return child;
}

NodeProcess::~NodeProcess() {
  Terminate(std::chrono::milliseconds(2000));
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

void NodeProcess::DrainStdout() {
  if (stdout_fd_ < 0) return;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(stdout_fd_, buf, sizeof(buf));
    if (n > 0) {
      stdout_buf_.append(buf, static_cast<size_t>(n));
      if (stdout_buf_.size() > (1 << 20)) stdout_buf_.erase(0, stdout_buf_.size() - (1 << 16));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // EAGAIN or EOF (the caller learns about exit from Alive)
  }
}

Result<uint16_t> NodeProcess::WaitListening(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    DrainStdout();
    size_t nl;
    while ((nl = stdout_buf_.find('\n')) != std::string::npos) {
      const std::string line = stdout_buf_.substr(0, nl);
      stdout_buf_.erase(0, nl + 1);
      if (auto metrics = ParseMetricsLine(line); metrics.ok()) metrics_port_ = *metrics;
      auto port = ParseListeningLine(line);
      if (port.ok()) return port;
    }
    if (!Alive()) {
      return UnavailableError(name_ + " exited during start-up (" + ExitDescription() + "); its log " + log_path_ +
                              " ends with:\n" + LogTail());
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return DeadlineExceededError(name_ + " did not print its listening line within " +
                                   std::to_string(timeout.count()) + " ms; log: " + log_path_);
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 50)));
  }
}

bool NodeProcess::Alive() {
  if (exited_ || pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    wait_status_ = status;
    return false;
  }
  return true;
}

std::string NodeProcess::ExitDescription() const {
  if (!exited_) return "";
  if (WIFEXITED(wait_status_)) return "exit " + std::to_string(WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) return "signal " + std::to_string(WTERMSIG(wait_status_));
  return "status " + std::to_string(wait_status_);
}

void NodeProcess::Signal(int sig) {
  if (!Alive()) return;
  if (sig == SIGTERM) {
    if (term_sent_) return;
    term_sent_ = true;
  }
  ::kill(pid_, sig);
}

std::string NodeProcess::Terminate(std::chrono::milliseconds grace) {
  if (!Alive()) return ExitDescription();
  Signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Alive()) return ExitDescription();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
  wait_status_ = status;
  return ExitDescription();
}

std::string NodeProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  return s;
}

}  // namespace tandem
