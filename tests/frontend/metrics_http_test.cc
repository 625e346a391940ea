// GET /metrics on the OpenAI server, with the colocated worker behind it: finished requests,
// SLO classes and rejections show up in the scrape, which Prometheus's own lint accepts, and it
// needs no API key (like /health; vLLM's is open too).
#include <gtest/gtest.h>
#include <unistd.h>

#include "frontend/http_server.h"
#include "tests/common/metrics_test_util.h"
#include "tests/frontend/serving_test_util.h"
#include "worker/local_engine_client.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::SampleValue;
using testing::TestHttpClient;

class MetricsHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    metrics_ = new std::shared_ptr<RouterMetrics>(std::make_shared<RouterMetrics>("tiny", "worker"));
    auto backend = CreateBackend("cpu");
    ASSERT_TRUE(backend.ok());
    LocalEngineOptions engine;
    engine.on_finished = [m = *metrics_](const RequestRecord& r) { m->ObserveFinished(r); };
    auto client = LocalEngineClient::Create(std::move(backend).value(), testing::TinyModelDir(), engine);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value().release();
    auto model = LoadServedModel(testing::TinyModelDir(), "tiny", client_->config());
    ASSERT_TRUE(model.ok());
    auto config =
        SloConfig::FromJson(R"({"classes": [{"name": "interactive", "ttft_ms": 60000, "tpot_ms": 60000}]})", "test");
    ASSERT_TRUE(config.ok());
    HttpServerOptions options;
    options.port = 0;
    options.api_key = "sk-test";
    options.slo_config = std::make_shared<const SloConfig>(std::move(*config));
    options.metrics = *metrics_;
    server_ = new HttpServer(options, std::move(model).value(), *client_);
    ASSERT_TRUE(server_->Start().ok());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete client_;
    delete metrics_;
  }

  static std::shared_ptr<RouterMetrics>* metrics_;
  static LocalEngineClient* client_;
  static HttpServer* server_;
};

std::shared_ptr<RouterMetrics>* MetricsHttpTest::metrics_ = nullptr;
LocalEngineClient* MetricsHttpTest::client_ = nullptr;
HttpServer* MetricsHttpTest::server_ = nullptr;

TEST_F(MetricsHttpTest, ServedAndRefusedRequestsShowUpInTheScrape) {
  TestHttpClient c(server_->port());
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer sk-test"}};
  const json body = {{"prompt", "hello there"}, {"max_tokens", 4}, {"temperature", 0}, {"ignore_eos", true}};
  json with_class = body;
  with_class["slo_class"] = "interactive";
  ASSERT_EQ(c.Post("/v1/completions", body, auth).status, 200);
  ASSERT_EQ(c.Post("/v1/completions", with_class, auth).status, 200);
  json unknown = body;
  unknown["slo_class"] = "nope";
  EXPECT_EQ(c.Post("/v1/completions", unknown, auth).status, 400);
  EXPECT_EQ(c.Request("POST", "/v1/completions", "{bad", auth).status, 400);
  EXPECT_EQ(c.Post("/v1/completions", body).status, 401);  // no key
  EXPECT_EQ(c.Get("/v1/models").status, 401);              // not a generation: not a rejection

  const auto scrape = c.Get("/metrics");  // no key needed
  ASSERT_EQ(scrape.status, 200);
  const std::string& text = scrape.body;
  const std::string own = "{model_name=\"tiny\",role=\"worker\"}";
  EXPECT_EQ(SampleValue(text, "tandem:time_to_first_token_seconds_count" + own), 2);
  EXPECT_EQ(SampleValue(text, "tandem:generation_tokens_total" + own), 8);
  EXPECT_EQ(SampleValue(text, "tandem:inter_token_latency_seconds_count" + own), 6);
  EXPECT_EQ(
      SampleValue(text, "tandem:request_success_total{model_name=\"tiny\",role=\"worker\",finished_reason=\"length\"}"),
      2);
  EXPECT_EQ(SampleValue(text, "tandem:slo_met_total{model_name=\"tiny\",role=\"worker\",slo_class=\"interactive\"}"),
            1);
  const std::string rejected = "tandem:request_rejections_total{model_name=\"tiny\",role=\"worker\",reason=";
  EXPECT_EQ(SampleValue(text, rejected + "\"invalid_json\"}"), 1);
  EXPECT_EQ(SampleValue(text, rejected + "\"invalid_api_key\"}"), 1);
  EXPECT_EQ(SampleValue(text, rejected + "\"invalid_value\"}"), 1);  // the unknown class
  EXPECT_EQ(SampleValue(text, "tandem:placement_decisions_total{decision=\"placed\""), 2);
  EXPECT_EQ(SampleValue(text, "tandem:num_requests_running" + own), 0);
  EXPECT_GE(SampleValue(text, "tandem:kv_cache_usage_perc" + own), 0);
  EXPECT_EQ(SampleValue(text, "tandem:node_up{model_name=\"tiny\",node_id="), 1);
  const auto check = testing::PromtoolCheck(text, "/tmp/tandem_metrics_http_" + std::to_string(::getpid()));
  if (!check.available) GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  EXPECT_EQ(check.problems, "");
}

TEST_F(MetricsHttpTest, OnlyGet) {
  TestHttpClient c(server_->port());
  EXPECT_EQ(c.Request("POST", "/metrics", "{}").status, 405);
}

}  // namespace
}  // namespace tandem
