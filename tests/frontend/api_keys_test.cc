// The API key file (digests, models, pinned SLO classes, limits) and the per-key rate limiter,
// with time passed in.
#include "frontend/api_keys.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "frontend/rate_limiter.h"

namespace tandem {
namespace {

constexpr int64_t kSecond = 1'000'000;

std::string Hex(const Sha256Digest& d) { return DigestHex(d); }

SloConfig Classes() {
  return *SloConfig::FromJson(R"({"classes": [{"name": "interactive", "ttft_ms": 500},
                                               {"name": "batch", "ttft_ms": 9000, "priority": 1}]})",
                              "test");
}

Result<ApiKeys> Parse(const std::string& text) {
  const SloConfig slo = Classes();
  return ApiKeys::FromJson(text, "keys.json", &slo);
}

std::map<std::string, std::string> Headers(const RateDecision& d) { return {d.headers.begin(), d.headers.end()}; }

TEST(ApiKeysTest, Sha256MatchesTheStandardVector) {
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeysTest, FindsTheKeyByItsDigestAndReadsItsEntry) {
  auto keys = Parse(R"({"keys": [
      {"name": "alice", "sha256": ")" +
                    Hex(Sha256("sk-alice")) + R"(", "slo_class": "interactive",
       "models": ["small"], "requests_per_minute": 60, "tokens_per_minute": 1000, "max_concurrent": 2},
      {"name": "bob", "sha256": ")" +
                    Hex(Sha256("sk-bob")) + R"("}]})");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 2);
  const int alice = keys->Find("sk-alice");
  ASSERT_EQ(alice, 0);
  EXPECT_EQ(keys->Find("sk-bob"), 1);
  EXPECT_EQ(keys->Find("sk-alic"), -1);
  EXPECT_EQ(keys->Find(""), -1);
  const ApiKey& a = keys->at(alice);
  EXPECT_EQ(a.name, "alice");
  EXPECT_EQ(a.slo_class, "interactive");
  EXPECT_TRUE(a.MayUse("small"));
  EXPECT_FALSE(a.MayUse("large"));
  EXPECT_TRUE(keys->at(1).MayUse("anything"));
  EXPECT_EQ(a.limits.requests_per_minute, 60);
  EXPECT_EQ(a.limits.tokens_per_minute, 1000);
  EXPECT_EQ(a.limits.max_concurrent, 2);
  EXPECT_FALSE(keys->at(1).limits.any());
  EXPECT_EQ(ApiKeys::Single("one").Find("one"), 0);
}

TEST(ApiKeysTest, BadFilesAreRefusedNamingTheEntry) {
  const std::string ok = Hex(Sha256("k"));
  const std::map<std::string, std::string> bad = {
      {"not json", "no keys"},
      {R"({"keys": []})", "expected"},
      {R"({"keys": [{"sha256": ")" + ok + R"("}]})", "name"},
      {R"({"keys": [{"name": "a", "sha256": "abc"}]})", "64 hex"},
      {R"({"keys": [{"name": "a", "sha256": ")" + std::string(64, 'g') + R"("}]})", "64 hex"},
      {R"({"keys": [{"name": "a", "sha256": ")" + ok + R"(", "slo_class": "gold"}]})", "gold"},
      {R"({"keys": [{"name": "a", "sha256": ")" + ok + R"(", "requests_per_minute": -1}]})", "requests_per_minute"},
      {R"({"keys": [{"name": "a", "sha256": ")" + ok + R"(", "max_concurrent": 1.5}]})", "max_concurrent"},
      {R"({"keys": [{"name": "a", "sha256": ")" + ok + R"(", "models": "small"}]})", "models"},
      {R"({"keys": [{"name": "a", "sha256": ")" + ok + R"("}, {"name": "a", "sha256": ")" + Hex(Sha256("j")) +
           R"("}]})",
       "twice"},
      {R"({"keys": [{"name": "a", "sha256": ")" + ok + R"("}, {"name": "b", "sha256": ")" + ok + R"("}]})", "same key"},
  };
  for (const auto& [text, why] : bad) {
    auto keys = Parse(text);
    ASSERT_FALSE(keys.ok()) << text;
    EXPECT_EQ(keys.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(keys.status().message().find("keys.json"), std::string::npos) << keys.status().ToString();
    if (why != "no keys") EXPECT_NE(keys.status().message().find(why), std::string::npos) << keys.status().ToString();
  }
  EXPECT_EQ(ApiKeys::FromFile("/nonexistent/keys.json", nullptr).status().code(), StatusCode::kNotFound);
  // Without --slo-config no key may pin a class.
  auto unpinnable =
      ApiKeys::FromJson(R"({"keys": [{"name": "a", "sha256": ")" + ok + R"(", "slo_class": "batch"}]})", "k", nullptr);
  EXPECT_FALSE(unpinnable.ok());
}

ApiKeys OneKey(const std::string& limits) {
  return *Parse(R"({"keys": [{"name": "a", "sha256": ")" + Hex(Sha256("k")) + R"(", )" + limits + "}]}");
}

TEST(RateLimiterTest, RequestsPerMinuteAllowABurstThenTheRate) {
  RateLimiter limiter(OneKey(R"("requests_per_minute": 3)"));
  const int64_t t0 = 100 * kSecond;
  for (int i = 0; i < 3; ++i) {
    RateDecision d = limiter.Acquire(0, 10, t0);
    ASSERT_TRUE(d.allowed) << i;
    limiter.Release(0);
    EXPECT_EQ(Headers(d)["x-ratelimit-remaining-requests"], std::to_string(2 - i));
  }
  RateDecision refused = limiter.Acquire(0, 10, t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 20);  // one request per 20 s
  EXPECT_NE(refused.why.find("requests per minute"), std::string::npos);
  EXPECT_EQ(Headers(refused)["x-ratelimit-limit-requests"], "3");
  EXPECT_EQ(Headers(refused)["x-ratelimit-reset-requests"], "1m0s");
  EXPECT_FALSE(limiter.Acquire(0, 10, t0 + 19 * kSecond).allowed);
  EXPECT_TRUE(limiter.Acquire(0, 10, t0 + 21 * kSecond).allowed);
}

TEST(RateLimiterTest, TokensPerMinuteChargePromptAndMaxTokens) {
  RateLimiter limiter(OneKey(R"("tokens_per_minute": 600)"));
  const int64_t t0 = kSecond;
  EXPECT_TRUE(limiter.Acquire(0, 500, t0).allowed);
  RateDecision refused = limiter.Acquire(0, 200, t0);  // 100 left
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 10);  // 100 more tokens at 10 per second
  EXPECT_EQ(Headers(refused)["x-ratelimit-remaining-tokens"], "100");
  EXPECT_TRUE(limiter.Acquire(0, 200, t0 + 10 * kSecond).allowed);
  // Larger than a minute's worth: waiting cannot help, so no Retry-After.
  RateDecision never = limiter.Acquire(0, 601, t0 + 3600 * kSecond);
  EXPECT_FALSE(never.allowed);
  EXPECT_EQ(never.retry_after_s, 0);
  EXPECT_NE(never.why.find("exceed"), std::string::npos);
}

TEST(RateLimiterTest, ConcurrencyCapHoldsUntilReleased) {
  RateLimiter limiter(OneKey(R"("max_concurrent": 2)"));
  {
    RateLease a(&limiter, 0), b(&limiter, 0);
    ASSERT_TRUE(limiter.Acquire(0, 1, kSecond).allowed);
    ASSERT_TRUE(limiter.Acquire(0, 1, kSecond).allowed);
    RateDecision third = limiter.Acquire(0, 1, kSecond);
    EXPECT_FALSE(third.allowed);
    EXPECT_EQ(third.retry_after_s, 1);
    EXPECT_TRUE(third.headers.empty());  // no rate limits, so no x-ratelimit headers
  }                                      // the leases end: both slots free
  EXPECT_TRUE(limiter.Acquire(0, 1, kSecond).allowed);
}

}  // namespace
}  // namespace tandem
