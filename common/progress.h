// Progress of a long step (loading a large checkpoint) on a terminal: one line on stderr,
// rewritten in place, shown only when stderr is a terminal and the step has already taken a
// second (quick steps and logs redirected to files stay clean), cleared when done.
//
// Threading: one owning thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tandem {

class TerminalProgress {
 public:
  // `what`: "loading weights"; `unit`: what `total` counts ("layers").
  TerminalProgress(std::string what, int64_t total, std::string unit);
  ~TerminalProgress();  // Done()
  TerminalProgress(const TerminalProgress&) = delete;
  TerminalProgress& operator=(const TerminalProgress&) = delete;

  void Update(int64_t done);
  void Done();  // clears the line, if one was shown

  // Whether this process would show progress at all (stderr is a terminal).
  static bool Enabled();

 private:
  const std::string what_;
  const int64_t total_;
  const std::string unit_;
  const bool enabled_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_shown_{};
  bool shown_ = false;
};

}  // namespace tandem
