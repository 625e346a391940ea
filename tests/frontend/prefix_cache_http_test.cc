// Prefix caching through the worker's HTTP API: a repeated prompt is answered the same with its
// start served from the cache (usage.prompt_tokens_details.cached_tokens, and the router's
// tandem:prefix_cache_hit_tokens_total), another cache_salt shares nothing, and a bad cache_salt
// is a 400. Real HTTP on 127.0.0.1.
#include <chrono>

#include <gtest/gtest.h>

#include "frontend/http_server.h"
#include "tests/frontend/serving_test_util.h"
#include "worker/local_engine_client.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::HttpReply;
using testing::TestHttpClient;

TEST(PrefixCacheHttpTest, ARepeatedPromptIsServedFromTheCacheWithTheSameText) {
  auto backend = CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  LocalEngineOptions options;
  options.engine.enable_prefix_caching = true;
  auto client = LocalEngineClient::Create(std::move(backend).value(), testing::TinyModelDir(), options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto model = LoadServedModel(testing::TinyModelDir(), "", (*client)->config());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  HttpServerOptions http_options;
  http_options.port = 0;
  HttpServer server(http_options, *model, **client);
  ASSERT_TRUE(server.Start().ok());
  TestHttpClient http(server.port(), std::chrono::seconds(30));

  std::vector<int32_t> prompt;
  for (int i = 0; i < 70; ++i) prompt.push_back(300 + i * 7);  // 4 full blocks of 16 before the last token
  const json body = {{"prompt", prompt}, {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true}};
  const HttpReply first = http.Post("/v1/completions", body);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_FALSE(first.json()["usage"].contains("prompt_tokens_details")) << first.body;  // nothing cached yet
  const HttpReply second = http.Post("/v1/completions", body);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.json()["usage"]["prompt_tokens_details"]["cached_tokens"], 64) << second.body;
  EXPECT_EQ(second.json()["choices"][0]["text"], first.json()["choices"][0]["text"]);

  json salted = body;
  salted["cache_salt"] = "tenant-b";
  const HttpReply other = http.Post("/v1/completions", salted);
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_FALSE(other.json()["usage"].contains("prompt_tokens_details")) << other.body;
  EXPECT_EQ(other.json()["choices"][0]["text"], first.json()["choices"][0]["text"]);

  const HttpReply metrics = http.Get("/metrics");
  EXPECT_NE(metrics.body.find("tandem:prefix_cache_hit_tokens_total"), std::string::npos);

  for (const json& bad : {json(""), json(7)}) {
    json b = body;
    b["cache_salt"] = bad;
    const HttpReply refused = http.Post("/v1/completions", b);
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_EQ(refused.json()["error"]["param"], "cache_salt") << refused.body;
  }
  server.Stop();
}

}  // namespace
}  // namespace tandem
