#include "kv_transfer/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace tandem {

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Kill();
    pid_ = other.pid_;
    other.pid_ = -1;
  }
  return *this;
}

Result<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env_overrides,
                                         int pass_fd, bool quiet) {
  if (argv.empty()) return InvalidArgumentError("spawn: empty argv");
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& o : env_overrides) overridden |= o.substr(0, o.find('=')) == key;
    if (!overridden) env.push_back(entry);
  }
  env.insert(env.end(), env_overrides.begin(), env_overrides.end());

  std::vector<char*> argv_c;
  for (const auto& a : argv) argv_c.push_back(const_cast<char*>(a.c_str()));
  argv_c.push_back(nullptr);
  std::vector<char*> env_c;
  for (const auto& e : env) env_c.push_back(const_cast<char*>(e.c_str()));
  env_c.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (pass_fd >= 0) {
    if (pass_fd == 3) {
      // dup2 onto itself would keep FD_CLOEXEC; clear it instead.
      fcntl(pass_fd, F_SETFD, fcntl(pass_fd, F_GETFD) & ~FD_CLOEXEC);
    } else {
      posix_spawn_file_actions_adddup2(&actions, pass_fd, 3);
    }
  }
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, argv_c.data(), env_c.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return UnavailableError("spawn " + argv[0] + ": " + std::strerror(rc));
  }
  return ChildProcess(pid);
}

Result<std::optional<int>> ChildProcess::TryWait() {
  if (pid_ <= 0) return FailedPreconditionError("wait: no child");
  int wstatus = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &wstatus, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::optional<int>();
  pid_ = -1;
  if (r < 0) return InternalError(std::string("waitpid: ") + std::strerror(errno));
  if (WIFEXITED(wstatus)) return std::optional<int>(WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return std::optional<int>(128 + WTERMSIG(wstatus));
  return InternalError("wait: unexpected child status " + std::to_string(wstatus));
}

Result<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(std::optional<int> code, TryWait());
    if (code) return *code;
    if (std::chrono::steady_clock::now() >= deadline) {
      const pid_t pid = pid_;
      Kill();
      return DeadlineExceededError("child " + std::to_string(pid) + " still running after " +
                                   std::to_string(timeout.count()) + " ms; killed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace tandem
