// The client against a scripted server on 127.0.0.1: every way a server can go wrong is one
// request's counted failure with its reason, and nothing hangs.
#include "loadgen/bench_runner.h"

#include <gtest/gtest.h>

#include <chrono>

#include "tests/loadgen/scripted_server.h"

namespace tandem::loadgen {
namespace {

BenchRequest Text(const std::string& prompt, int32_t output_len = 4) {
  BenchRequest r;
  r.prompt_text = prompt;
  r.output_len = output_len;
  return r;
}

RunOptions Options(uint16_t port) {
  RunOptions o;
  o.endpoint.port = port;
  o.model = "scripted";
  o.request_timeout_s = 1.0;
  return o;
}

TEST(BenchRunnerTest, EachFailureIsCountedWithItsReasonAndNothingHangs) {
  testing::ScriptedServer server;
  const std::vector<BenchRequest> requests = {Text("ok", 5), Text("error"), Text("cut"),
                                              Text("hang"),  Text("bad"),   Text("ok", 1)};
  const auto start = std::chrono::steady_clock::now();
  auto run = RunBenchmark(requests, std::vector<double>(requests.size(), 0.0), Options(server.port()));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  const auto& r = run->results;
  ASSERT_EQ(r.size(), 6u);
  EXPECT_TRUE(r[0].success) << r[0].error;
  EXPECT_EQ(r[0].output_tokens, 5);
  EXPECT_EQ(r[0].chunk_s.size(), 5u);
  EXPECT_EQ(r[0].prompt_len, 3);  // from usage
  EXPECT_EQ(r[0].http_status, 200);
  EXPECT_FALSE(r[1].success);
  EXPECT_EQ(r[1].http_status, 400);
  EXPECT_EQ(r[1].error, "HTTP 400: the prompt is too long");
  EXPECT_FALSE(r[2].success);
  EXPECT_EQ(r[2].error, "the stream ended before [DONE]");
  EXPECT_FALSE(r[3].success);
  EXPECT_EQ(r[3].error, "timed out after 1 s");
  EXPECT_FALSE(r[4].success);
  EXPECT_NE(r[4].error.find("not a JSON object"), std::string::npos);
  EXPECT_TRUE(r[5].success);
  for (const RequestResult& x : r) EXPECT_GE(x.done_s, x.sent_s);
  EXPECT_GE(run->duration_s, 1.0);  // the hung request held the run until its timeout
}

TEST(BenchRunnerTest, OpenLoopSendsOnScheduleAndMaxConcurrencyHoldsRequestsBack) {
  testing::ScriptedServer server;
  std::vector<BenchRequest> requests(20, Text("ok", 2));
  std::vector<double> schedule;
  for (int i = 0; i < 20; ++i) schedule.push_back(0.01 * i);
  auto run = RunBenchmark(requests, schedule, Options(server.port()));
  ASSERT_TRUE(run.ok());
  for (const RequestResult& x : run->results) {
    EXPECT_TRUE(x.success) << x.error;
    EXPECT_GE(x.sent_s, x.scheduled_s);
    EXPECT_LT(x.sent_s - x.scheduled_s, 0.05);  // generous: a loaded CI machine
  }
  requests.push_back(Text("hang"));
  schedule.push_back(0);
  std::rotate(requests.rbegin(), requests.rbegin() + 1, requests.rend());  // the hang goes first
  RunOptions o = Options(server.port());
  o.max_concurrency = 1;
  run = RunBenchmark(requests, schedule, o);
  ASSERT_TRUE(run.ok());
  // One slot: everything waits for the hung request's 1 s timeout.
  for (size_t i = 1; i < run->results.size(); ++i) EXPECT_GE(run->results[i].sent_s, 1.0);
}

TEST(BenchRunnerTest, AnUnreachableServerFailsEveryRequestQuickly) {
  uint16_t port = 0;
  {
    testing::ScriptedServer server;  // take a free port, then let it go
    port = server.port();
  }
  auto run = RunBenchmark({Text("ok"), Text("ok")}, {0, 0}, Options(port));
  ASSERT_TRUE(run.ok());
  for (const RequestResult& x : run->results) {
    EXPECT_FALSE(x.success);
    EXPECT_NE(x.error.find("connect"), std::string::npos) << x.error;
  }
  EXPECT_FALSE(FetchFirstModel(Options(port).endpoint, "", 2).ok());
}

TEST(BenchRunnerTest, FetchesTheModelAndBuildsVllmShapedBodies) {
  testing::ScriptedServer server;
  auto model = FetchFirstModel(Options(server.port()).endpoint, "", 2);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(*model, "scripted");
  RunOptions o = Options(server.port());
  o.ignore_eos = true;
  o.extra_body = {{"top_k", 5}};
  BenchRequest ids;
  ids.prompt_ids = {5, 6, 7};
  ids.output_len = 9;
  nlohmann::json body = BuildRequestBody(ids, o);
  EXPECT_EQ(body["prompt"], nlohmann::json({5, 6, 7}));
  EXPECT_EQ(body["max_tokens"], 9);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["ignore_eos"], true);
  EXPECT_EQ(body["top_k"], 5);
  o.endpoint.path = "/v1/chat/completions";
  body = BuildRequestBody(Text("hello", 3), o);
  EXPECT_EQ(body["messages"][0]["content"], "hello");
  EXPECT_EQ(body["max_completion_tokens"], 3);
}

TEST(ParseEndpointTest, BaseUrlHostPortAndEndpoint) {
  auto e = ParseEndpoint("http://127.0.0.1:9000/v1", "ignored", 1, "/v1/chat/completions");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 9000);
  EXPECT_EQ(e->path, "/v1/chat/completions");
  EXPECT_TRUE(e->chat());
  e = ParseEndpoint("", "localhost", 8001, "v1/completions");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->path, "/v1/completions");
  EXPECT_FALSE(e->chat());
  EXPECT_FALSE(ParseEndpoint("https://x", "", 1, "").ok());
  EXPECT_FALSE(ParseEndpoint("http://x:notaport", "", 1, "").ok());
  EXPECT_FALSE(ParseEndpoint("ftp://x", "", 1, "").ok());
  EXPECT_FALSE(ParseEndpoint("", "x", 70000, "").ok());
}

}  // namespace
}  // namespace tandem::loadgen
