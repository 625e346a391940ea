// SLO classes over real HTTP: a request names a class (body or X-SLO-Class header) or carries
// its own targets, is refused with 400 for a class the server does not define, and hears its
// measured TTFT, TPOT and whether it met them in usage (streamed or not).
#include <gtest/gtest.h>

#include "common/sse.h"
#include "frontend/http_server.h"
#include "tests/frontend/serving_test_util.h"
#include "worker/local_engine_client.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::TestHttpClient;

class SloApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto backend = CreateBackend("cpu");
    ASSERT_TRUE(backend.ok());
    auto client = LocalEngineClient::Create(std::move(backend).value(), testing::TinyModelDir(), LocalEngineOptions{});
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value().release();
    auto model = LoadServedModel(testing::TinyModelDir(), "", client_->config());
    ASSERT_TRUE(model.ok());
    auto config = SloConfig::FromJson(R"({"classes": [
        {"name": "interactive", "ttft_ms": 60000, "tpot_ms": 60000, "default": true},
        {"name": "impossible", "ttft_ms": 0.001, "priority": 1}]})",
                                      "test");
    ASSERT_TRUE(config.ok());
    HttpServerOptions options;
    options.port = 0;
    options.slo_config = std::make_shared<const SloConfig>(std::move(*config));
    server_ = new HttpServer(options, std::move(model).value(), *client_);
    ASSERT_TRUE(server_->Start().ok());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete client_;
  }
  static json Body(json extra) {
    json body = {{"prompt", "hello there"}, {"max_tokens", 4}, {"temperature", 0}, {"ignore_eos", true}};
    if (extra.is_object()) body.update(extra);
    return body;
  }

  static LocalEngineClient* client_;
  static HttpServer* server_;
};

LocalEngineClient* SloApiTest::client_ = nullptr;
HttpServer* SloApiTest::server_ = nullptr;

TEST_F(SloApiTest, UsageReportsTheMeasuredTargetsOfTheClass) {
  TestHttpClient c(server_->port());
  auto r = c.Post("/v1/completions", Body({{"slo_class", "interactive"}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const json usage = r.json()["usage"];
  EXPECT_EQ(usage["slo_class"], "interactive");
  EXPECT_GT(usage["ttft_ms"].get<double>(), 0);
  EXPECT_GE(usage["tpot_ms"].get<double>(), 0);
  EXPECT_EQ(usage["slo_met"], true);
  EXPECT_EQ(usage["completion_tokens"], 4);
}

TEST_F(SloApiTest, TheHeaderNamesAClassAndMissesAreReported) {
  TestHttpClient c(server_->port());
  auto r = c.Post("/v1/completions", Body({}), {{"X-SLO-Class", "impossible"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["slo_class"], "impossible");
  EXPECT_EQ(r.json()["usage"]["slo_met"], false);
  // The body's class wins over the header's.
  r = c.Post("/v1/completions", Body({{"slo_class", "interactive"}}), {{"X-SLO-Class", "impossible"}});
  EXPECT_EQ(r.json()["usage"]["slo_class"], "interactive");
}

TEST_F(SloApiTest, DefaultClassAndOwnTargets) {
  TestHttpClient c(server_->port());
  auto r = c.Post("/v1/completions", Body({}));
  EXPECT_EQ(r.json()["usage"]["slo_class"], "interactive");  // the file's default
  r = c.Post("/v1/completions", Body({{"slo_class", "interactive"}, {"slo", {{"ttft_ms", 0.001}}}}));
  EXPECT_EQ(r.json()["usage"]["slo_met"], false);  // its own TTFT target overrides the class's
}

TEST_F(SloApiTest, TheLastStreamChunkCarriesTheReport) {
  TestHttpClient c(server_->port());
  auto r = c.Post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                           {"max_tokens", 3},
                                           {"ignore_eos", true},
                                           {"stream", true},
                                           {"stream_options", {{"include_usage", true}}},
                                           {"slo", {{"tpot_ms", 60000}}}});
  ASSERT_EQ(r.status, 200);
  SseParser parser;
  parser.Feed(r.body);
  const std::vector<std::string> events = parser.TakeEvents();
  ASSERT_GE(events.size(), 2u);
  const json usage = json::parse(events[events.size() - 2])["usage"];
  EXPECT_EQ(usage["slo_class"], "interactive");  // the default class, its TPOT overridden
  EXPECT_EQ(usage["slo_met"], true);
  EXPECT_GT(usage["ttft_ms"].get<double>(), 0);
}

TEST_F(SloApiTest, AnUnknownClassIs400AndServingGoesOn) {
  TestHttpClient c(server_->port());
  auto r = c.Post("/v1/completions", Body({{"slo_class", "platinum"}}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["param"], "slo_class");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("interactive, impossible"), std::string::npos);
  r = c.Post("/v1/completions", Body({}), {{"X-SLO-Class", "platinum"}});
  EXPECT_EQ(r.status, 400);
  r = c.Post("/v1/completions", Body({{"slo", {{"ttft_ms", -1}}}}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["param"], "slo.ttft_ms");
  EXPECT_EQ(c.Post("/v1/completions", Body({})).status, 200);
}

}  // namespace
}  // namespace tandem
