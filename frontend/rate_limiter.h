// Per-key limits of the router's API keys (frontend/api_keys.h): token buckets for requests and
// tokens per minute (full at start, refilled continuously at limit / 60 per second, so a key may
// burst up to a minute's worth and then runs at its rate, as OpenAI's limits behave), and a cap
// on the key's requests in flight. A request is charged its prompt + max_tokens up front, as
// OpenAI estimates it. Decisions take `now` (microseconds of any monotonic clock), so tests drive
// time; the HTTP threads share one limiter (a mutex).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "frontend/api_keys.h"

namespace tandem {

struct RateDecision {
  bool allowed = true;
  std::string why;        // refused: which limit, in words
  int retry_after_s = 0;  // refused: when the limit allows it (0: never, the request is too large)
  // OpenAI's x-ratelimit-* headers (limit, remaining, reset per requests and tokens), for the
  // limits the key has.
  std::vector<std::pair<std::string, std::string>> headers;
};

class RateLimiter {
 public:
  explicit RateLimiter(const ApiKeys& keys);

  // Charges one request of `tokens` to key `key` if every limit of the key allows it now; an
  // allowed request holds a slot of max_concurrent until Release.
  RateDecision Acquire(int key, double tokens, int64_t now_us);
  void Release(int key);

 private:
  struct Bucket {
    double capacity = 0;  // per minute; 0: unlimited
    double level = 0;
    int64_t updated_us = 0;

    void Refill(int64_t now_us);
    double SecondsUntil(double amount) const;  // until level >= amount
  };
  struct KeyState {
    Bucket requests, tokens;
    int32_t max_concurrent = 0;
    int32_t in_flight = 0;
  };

  std::mutex mu_;
  std::vector<KeyState> keys_;  // GUARDED_BY(mu_)
};

// Holds a request's slot with the limiter (an allowed Acquire) and releases it when destroyed.
class RateLease {
 public:
  RateLease(RateLimiter* limiter, int key) : limiter_(limiter), key_(key) {}
  ~RateLease() {
    if (limiter_) limiter_->Release(key_);
  }
  RateLease(const RateLease&) = delete;
  RateLease& operator=(const RateLease&) = delete;

 private:
  RateLimiter* limiter_;
  int key_;
};

}  // namespace tandem
