// A node process started by `tandem serve` (not kv_transfer/child_process.h, which tests use for
// transfer peers): fork/exec with stdout on a pipe (scanned for the
// node's "listening on HOST:PORT" line) and stderr appended to a log file (shown when the node
// dies during start-up). The child gets SIGTERM if this process dies (PR_SET_PDEATHSIG), so a
// crashed `serve` leaves no orphaned nodes.
//
// Threading: one owning thread; not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

// The port of a "listening on [http://]HOST:PORT" line; InvalidArgument for any other line.
Result<uint16_t> ParseListeningLine(std::string_view line);
// The port of a "metrics on http://HOST:PORT/metrics" line (printed before the listening line).
Result<uint16_t> ParseMetricsLine(std::string_view line);

class NodeProcess {
 public:
  // Starts `argv[0]` (a path) with `argv`. Errors: InvalidArgument for an empty argv,
  // Unavailable when fork or pipe fails, NotFound when the log cannot be created. An exec
  // failure shows up as an early exit (status 127) with the reason in the log.
  static Result<std::unique_ptr<NodeProcess>> Spawn(std::string name, std::vector<std::string> argv,
                                                    std::string log_path);
  ~NodeProcess();  // Terminate(2 s) if still running
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // Reads stdout until the listening line. Errors: Unavailable when the child exits first
  // (with its exit status and the tail of its log), DeadlineExceeded after `timeout`.
  Result<uint16_t> WaitListening(std::chrono::milliseconds timeout);
  // The metrics port its output announced before the listening line; 0 if none.
  uint16_t metrics_port() const { return metrics_port_; }

  // Reaps the child if it has exited; true while it runs.
  bool Alive();
  // Sends `sig` if the child still runs (lets a caller SIGTERM many children before waiting).
  void Signal(int sig);
  // SIGTERM, then SIGKILL after `grace`; always reaps. Idempotent. Returns how it ended
  // ("exit 0", "signal 9", ...).
  std::string Terminate(std::chrono::milliseconds grace);

  // The last `max_bytes` of the child's log.
  std::string LogTail(size_t max_bytes = 4000) const;
  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }
  std::string ExitDescription() const;  // "" while running

 private:
  NodeProcess() = default;
  void DrainStdout();  // read without blocking, keeping lines we have not looked at

  std::string name_;
  std::string log_path_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  bool exited_ = false;
  bool term_sent_ = false;  // a second SIGTERM would kill a node that is already shutting down
  int wait_status_ = 0;
  std::string stdout_buf_;
  uint16_t metrics_port_ = 0;
};

}  // namespace tandem
