// The one clock of Tandem. Every timestamp and duration inside a process is steady-clock
// microseconds (`Clock::NowMicros`); Unix time appears only at the edge: on the wire (the
// `*_unix_us` fields of proto/tandem.proto) and in what people read. Convert there, and only
// there, with SteadyToUnixMicros / UnixToSteadyMicros.
//
// Decision code (the engine's Scheduler, the router core, admission, placement) never reads a
// clock: it is handed `now`. Whoever drives it owns a Clock: the real one (SteadyClock) in the
// processes, a ManualClock in tests and in the simulator, so the same decisions replay on a
// virtual clock.
#pragma once

#include <atomic>
#include <cstdint>

namespace tandem {

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds on a monotonic clock; only differences and comparisons mean anything.
  virtual int64_t NowMicros() const = 0;
};

// std::chrono::steady_clock. Thread-safe.
class SteadyClock final : public Clock {
 public:
  static const SteadyClock& Instance();
  int64_t NowMicros() const override { return Read(); }
  // The same reading, for code that has no Clock to hand (process edges, I/O shells, tests).
  static int64_t Read();
};

// A clock that moves only when told to (tests, the simulator). Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_us = 0) : now_us_(start_us) {}
  int64_t NowMicros() const override { return now_us_.load(); }
  void Set(int64_t now_us) { now_us_.store(now_us); }
  void Advance(int64_t delta_us) { now_us_.fetch_add(delta_us); }

 private:
  std::atomic<int64_t> now_us_;
};

// Wall-clock microseconds since the Unix epoch (the edge only: wire stamps, "created").
int64_t UnixNowMicros();
// A steady stamp of this process as Unix microseconds, and back, through the offset between the
// two clocks measured now. 0 (never happened) maps to 0 both ways; any int64 can arrive on the
// wire, so results saturate at +-2^61 us, where the difference of two results still fits in int64. Across hosts the result is
// only as good as their clock synchronisation: latencies that matter (TTFT, TPOT) are computed
// from stamps of one process.
int64_t SteadyToUnixMicros(int64_t steady_us);
int64_t UnixToSteadyMicros(int64_t unix_us);

}  // namespace tandem
