// API keys over real HTTP (--api-keys): each key authenticates, is held to its pinned SLO class,
// sees only its models, and hears 429 with Retry-After and x-ratelimit-* headers beyond its
// limits, while other keys are served on.
#include <gtest/gtest.h>

#include "frontend/http_server.h"
#include "tests/frontend/serving_test_util.h"
#include "worker/local_engine_client.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::TestHttpClient;

std::string Hex(const Sha256Digest& d) { return DigestHex(d); }

class ApiKeysHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto backend = CreateBackend("cpu");
    ASSERT_TRUE(backend.ok());
    auto client = LocalEngineClient::Create(std::move(backend).value(), testing::TinyModelDir(), LocalEngineOptions{});
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value().release();
    auto model = LoadServedModel(testing::TinyModelDir(), "tiny", client_->config());
    ASSERT_TRUE(model.ok());
    auto slo = SloConfig::FromJson(R"({"classes": [
        {"name": "interactive", "ttft_ms": 60000, "default": true},
        {"name": "batch", "ttft_ms": 120000, "priority": 1}]})",
                                   "test");
    ASSERT_TRUE(slo.ok());
    auto keys = ApiKeys::FromJson(R"({"keys": [
        {"name": "batch-tenant", "sha256": ")" +
                                      Hex(Sha256("sk-batch")) + R"(", "slo_class": "batch",
         "requests_per_minute": 2},
        {"name": "other-model", "sha256": ")" +
                                      Hex(Sha256("sk-other")) + R"(", "models": ["large"]},
        {"name": "open", "sha256": ")" +
                                      Hex(Sha256("sk-open")) + R"("}]})",
                                  "test", &*slo);
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    HttpServerOptions options;
    options.port = 0;
    options.slo_config = std::make_shared<const SloConfig>(std::move(*slo));
    options.api_keys = std::make_shared<const ApiKeys>(std::move(*keys));
    server_ = new HttpServer(options, std::move(model).value(), *client_);
    ASSERT_TRUE(server_->Start().ok());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete client_;
  }
  static std::map<std::string, std::string> Bearer(const std::string& key) {
    return {{"Authorization", "Bearer " + key}};
  }
  static json Body(json extra = json::object()) {
    json body = {{"prompt", "hello there"}, {"max_tokens", 3}, {"temperature", 0}, {"ignore_eos", true}};
    body.update(extra);
    return body;
  }

  static LocalEngineClient* client_;
  static HttpServer* server_;
};

LocalEngineClient* ApiKeysHttpTest::client_ = nullptr;
HttpServer* ApiKeysHttpTest::server_ = nullptr;

TEST_F(ApiKeysHttpTest, UnknownKeysAre401AndKnownOnesServed) {
  TestHttpClient c(server_->port());
  EXPECT_EQ(c.Post("/v1/completions", Body()).status, 401);
  EXPECT_EQ(c.Post("/v1/completions", Body(), Bearer("sk-nobody")).status, 401);
  EXPECT_EQ(c.Post("/v1/completions", Body(), {{"Authorization", "sk-open"}}).status, 401);  // not "Bearer"
  auto r = c.Post("/v1/completions", Body(), Bearer("sk-open"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["slo_class"], "interactive");      // the default class
  EXPECT_EQ(r.headers.count("x-ratelimit-limit-requests"), 0u);  // this key has no limits
}

TEST_F(ApiKeysHttpTest, AKeySeesOnlyItsModels) {
  TestHttpClient c(server_->port());
  auto r = c.Post("/v1/completions", Body(), Bearer("sk-other"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"]["code"], "model_not_found");
  auto models = c.Request("GET", "/v1/models", "", Bearer("sk-other"));
  ASSERT_EQ(models.status, 200);
  EXPECT_TRUE(models.json()["data"].empty());
  models = c.Request("GET", "/v1/models", "", Bearer("sk-open"));
  EXPECT_EQ(models.json()["data"].size(), 1u);
}

// The batch tenant is held to its class, may not pick another, and has 2 requests a minute:
// the third is 429 with Retry-After and OpenAI's headers; other keys are unaffected.
TEST_F(ApiKeysHttpTest, APinnedClassAndARateLimit) {
  TestHttpClient c(server_->port());
  auto r = c.Post("/v1/completions", Body({{"slo_class", "interactive"}}), Bearer("sk-batch"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["code"], "slo_class_not_allowed");
  r = c.Post("/v1/completions", Body(), Bearer("sk-batch"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["slo_class"], "batch");
  EXPECT_EQ(r.headers["x-ratelimit-limit-requests"], "2");
  EXPECT_EQ(r.headers["x-ratelimit-remaining-requests"], "1");
  r = c.Post("/v1/completions", Body({{"stream", true}}), Bearer("sk-batch"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-ratelimit-remaining-requests"], "0");
  r = c.Post("/v1/completions", Body(), Bearer("sk-batch"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.json()["error"]["code"], "rate_limit_exceeded");
  EXPECT_GE(std::stoi(r.headers["retry-after"]), 1);
  EXPECT_EQ(r.headers["x-ratelimit-remaining-requests"], "0");
  EXPECT_EQ(c.Post("/v1/completions", Body(), Bearer("sk-open")).status, 200);
}

}  // namespace
}  // namespace tandem
