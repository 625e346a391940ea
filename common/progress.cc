#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace tandem {

bool TerminalProgress::Enabled() { return ::isatty(STDERR_FILENO) == 1; }

TerminalProgress::TerminalProgress(std::string what, int64_t total, std::string unit)
    : what_(std::move(what)),
      total_(total),
      unit_(std::move(unit)),
      enabled_(Enabled() && total > 0),
      start_(std::chrono::steady_clock::now()) {}

TerminalProgress::~TerminalProgress() { Done(); }

void TerminalProgress::Update(int64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - start_ < std::chrono::seconds(1)) return;
  if (shown_ && now - last_shown_ < std::chrono::milliseconds(100) && done < total_) return;
  last_shown_ = now;
  shown_ = true;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r%s: %lld/%lld %s (%d%%), %.0f s ", what_.c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), unit_.c_str(), static_cast<int>(100 * done / total_), seconds);
  std::fflush(stderr);
}

void TerminalProgress::Done() {
  if (!shown_) return;
  std::fprintf(stderr, "\r\033[K");  // clear the line: the log line that follows says it all
  std::fflush(stderr);
  shown_ = false;
}

}  // namespace tandem
