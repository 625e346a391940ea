// A child process started with posix_spawn (fork+exec in one step, so no UCX or thread state
// is ever duplicated into it) that is killed and reaped when its owner goes away. Tests and
// the transfer bench use it to put the two ends of a transfer in two real processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

class ChildProcess {
 public:
  // Runs argv[0] (a path) with `argv`, the parent's environment plus `env_overrides`
  // ("KEY=VALUE", replacing KEY if present). If `pass_fd` >= 0 it is handed to the child as
  // file descriptor 3 (the only descriptor besides stdio it inherits on purpose).
  // `quiet` sends the child's stdout and stderr to /dev/null.
  static Result<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env_overrides,
                                    int pass_fd = -1, bool quiet = false);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess() { Kill(); }

  // The exit code (128 + signal if killed by one). DeadlineExceeded after `timeout`, and the
  // child is then killed so that nothing outlives a failed test.
  Result<int> Wait(std::chrono::milliseconds timeout);
  // The exit code if the child has ended (reaping it), nullopt if it still runs.
  Result<std::optional<int>> TryWait();
  // SIGKILL and reap; no-op when already reaped.
  void Kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

}  // namespace tandem
