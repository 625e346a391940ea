// Service-level objectives a request is held to. A request names a class (`"slo_class"` in the
// body or the `X-SLO-Class` header) from the router's `--slo-config` file, or carries its own
// targets (`"slo": {"ttft_ms": 250, "tpot_ms": 50}`, which override its class's), or neither
// (the file's default class, if it marks one; otherwise no targets). Targets are checked against
// the measured TTFT and TPOT of the RequestRecord, and reported back in the response's usage.
//
// The file (the format tandem bench's --slo-config reads too):
//   {"classes": [{"name": "interactive", "ttft_ms": 250, "tpot_ms": 50, "priority": 0,
//                 "default": true},
//                {"name": "batch", "ttft_ms": 5000, "tpot_ms": 200, "priority": 1,
//                 "max_queued": 256}]}
// priority: smaller is more important (shed last). A class needs at least one target.
// max_queued (optional, >= 0): at most this many requests of the class wait in the router for a
// placement; one more is refused (503 queue_full with Retry-After) while other classes still
// queue. Absent: only the router's global --max-queued-requests bounds it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

// The TTFT budget a queue ordered by deadline (the prefill node's, and the router's model of it)
// gives a request without a TTFT target: its deadline is arrival + this.
inline constexpr int64_t kUntargetedTtftBudgetUs = 10'000'000;

// The longest TTFT budget a deadline counts (about 31 years): a target off the wire may be any
// double, and arrival stamps stay within +-2^61 us (common/clock.h), so the sum cannot overflow.
inline constexpr double kMaxTtftBudgetUs = 1e15;

// A request's place in a deadline-ordered queue: arrival + its TTFT target (or the budget above).
// A target that is not a positive number (0, negative, NaN) counts as none.
inline int64_t TtftDeadlineUs(int64_t arrival_us, double ttft_target_ms) {
  if (!(ttft_target_ms > 0)) return arrival_us + kUntargetedTtftBudgetUs;
  const double budget_us = ttft_target_ms * 1000.0;
  return arrival_us + static_cast<int64_t>(budget_us < kMaxTtftBudgetUs ? budget_us : kMaxTtftBudgetUs);
}

// The largest per-class max_queued a file may set (the global flag's bound too).
inline constexpr int32_t kMaxClassQueued = 1 << 24;

struct SloClass {
  std::string name;
  double ttft_ms = 0;  // 0: no target
  double tpot_ms = 0;
  int32_t priority = 0;
  int32_t max_queued = -1;  // -1: no bound of its own
};

// What one request is held to; empty() when it has no target at all.
struct RequestSlo {
  std::string class_name;  // "" when the targets came only from the request itself
  double ttft_ms = 0;      // 0: no target
  double tpot_ms = 0;
  int32_t priority = 0;
  // Its class's bound on requests waiting in the router (-1: none); the router core counts
  // queued requests by class_name. Not part of what a node is told.
  int32_t max_queued = -1;

  bool empty() const { return ttft_ms <= 0 && tpot_ms <= 0; }
  // Whether the measured values meet each target, and every target (a missing TTFT, -1,
  // misses; an unset target is met).
  bool TtftMet(double ttft_ms_measured) const {
    return ttft_ms <= 0 || (ttft_ms_measured >= 0 && ttft_ms_measured <= ttft_ms);
  }
  bool TpotMet(double tpot_ms_measured) const { return tpot_ms <= 0 || tpot_ms_measured <= tpot_ms; }
  bool Met(double ttft_ms_measured, double tpot_ms_measured) const {
    return TtftMet(ttft_ms_measured) && TpotMet(tpot_ms_measured);
  }
};

// What a request of class `c` is held to (before its own "slo" targets override them).
inline RequestSlo RequestSloOf(const SloClass& c) {
  RequestSlo slo;
  slo.class_name = c.name;
  slo.ttft_ms = c.ttft_ms;
  slo.tpot_ms = c.tpot_ms;
  slo.priority = c.priority;
  slo.max_queued = c.max_queued;
  return slo;
}

class SloConfig {
 public:
  // InvalidArgument naming the file and the class or field at fault; NotFound for no file.
  static Result<SloConfig> FromFile(const std::string& path);
  static Result<SloConfig> FromJson(const std::string& text, const std::string& source);

  const SloClass* Find(const std::string& name) const;
  const SloClass* default_class() const { return default_ < 0 ? nullptr : &classes_[static_cast<size_t>(default_)]; }
  const std::vector<SloClass>& classes() const { return classes_; }
  std::string Names() const;  // "interactive, batch" for error messages

 private:
  std::vector<SloClass> classes_;
  int default_ = -1;
};

}  // namespace tandem
