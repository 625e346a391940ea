#include "frontend/rate_limiter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tandem {

namespace {

// A Go-style duration, as OpenAI's x-ratelimit-reset-* headers write them: "20ms", "1.5s", "6m0s".
std::string Duration(double seconds) {
  if (seconds < 1) return fmt::format("{}ms", static_cast<int64_t>(std::ceil(seconds * 1000)));
  if (seconds < 60) return fmt::format("{:.3g}s", seconds);
  const int64_t whole = static_cast<int64_t>(std::ceil(seconds));
  return fmt::format("{}m{}s", whole / 60, whole % 60);
}

}  // namespace

void RateLimiter::Bucket::Refill(int64_t now_us) {
  if (capacity <= 0) return;
  const double elapsed_s = std::max<int64_t>(0, now_us - updated_us) / 1e6;
  level = std::min(capacity, level + elapsed_s * capacity / 60.0);
  updated_us = now_us;
}

double RateLimiter::Bucket::SecondsUntil(double amount) const {
  if (capacity <= 0 || level >= amount) return 0;
  return (amount - level) * 60.0 / capacity;
}

RateLimiter::RateLimiter(const ApiKeys& keys) : keys_(static_cast<size_t>(keys.size())) {
  for (int i = 0; i < keys.size(); ++i) {
    const ApiKeyLimits& l = keys.at(i).limits;
    KeyState& k = keys_[static_cast<size_t>(i)];
    k.requests.capacity = k.requests.level = l.requests_per_minute;
    k.tokens.capacity = k.tokens.level = l.tokens_per_minute;
    k.max_concurrent = l.max_concurrent;
  }
}

RateDecision RateLimiter::Acquire(int key, double tokens, int64_t now_us) {
  std::lock_guard<std::mutex> lock(mu_);
  KeyState& k = keys_.at(static_cast<size_t>(key));
  // Buckets start full at the first request (construction time is not a clock reading).
  for (Bucket* b : {&k.requests, &k.tokens}) {
    if (b->updated_us == 0) b->updated_us = now_us;
    b->Refill(now_us);
  }
  RateDecision d;
  if (k.tokens.capacity > 0 && tokens > k.tokens.capacity) {
    d.allowed = false;
    d.why = fmt::format("the request's {} tokens (prompt + max_tokens) exceed this key's {} tokens per minute",
                        static_cast<int64_t>(tokens), static_cast<int64_t>(k.tokens.capacity));
  } else if (k.requests.capacity > 0 && k.requests.level < 1) {
    d.allowed = false;
    d.why = fmt::format("this key's limit of {} requests per minute is reached", k.requests.capacity);
    d.retry_after_s = std::max(1, static_cast<int>(std::ceil(k.requests.SecondsUntil(1))));
  } else if (k.tokens.capacity > 0 && k.tokens.level < tokens) {
    d.allowed = false;
    d.why = fmt::format("this key's limit of {} tokens per minute is reached", k.tokens.capacity);
    d.retry_after_s = std::max(1, static_cast<int>(std::ceil(k.tokens.SecondsUntil(tokens))));
  } else if (k.max_concurrent > 0 && k.in_flight >= k.max_concurrent) {
    d.allowed = false;
    d.why = fmt::format("this key already has {} requests in flight, its limit", k.in_flight);
    d.retry_after_s = 1;  // a slot frees when one of them ends: no better estimate
  }
  if (d.allowed) {
    if (k.requests.capacity > 0) k.requests.level -= 1;
    if (k.tokens.capacity > 0) k.tokens.level -= tokens;
    ++k.in_flight;
  }
  auto add = [&](const char* what, const Bucket& b) {
    if (b.capacity <= 0) return;
    d.headers.emplace_back(fmt::format("x-ratelimit-limit-{}", what), fmt::format("{}", b.capacity));
    d.headers.emplace_back(fmt::format("x-ratelimit-remaining-{}", what),
                           fmt::format("{}", static_cast<int64_t>(std::max(0.0, std::floor(b.level)))));
    d.headers.emplace_back(fmt::format("x-ratelimit-reset-{}", what), Duration(b.SecondsUntil(b.capacity)));
  };
  add("requests", k.requests);
  add("tokens", k.tokens);
  return d;
}

void RateLimiter::Release(int key) {
  std::lock_guard<std::mutex> lock(mu_);
  KeyState& k = keys_.at(static_cast<size_t>(key));
  k.in_flight = std::max(0, k.in_flight - 1);
}

}  // namespace tandem
