#include "common/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "common/metrics_endpoint.h"
#include "tests/common/metrics_test_util.h"

namespace tandem {
namespace {

using testing::HttpGet;
using testing::MetricFamilies;
using testing::SampleValue;

TEST(MetricsTest, BucketsIncrease) {
  for (const auto* b : {&RequestLatencyBuckets(), &TokenLatencyBuckets(), &ByteBuckets()}) {
    ASSERT_FALSE(b->empty());
    EXPECT_TRUE(std::is_sorted(b->begin(), b->end()));
    EXPECT_EQ(std::adjacent_find(b->begin(), b->end()), b->end());
  }
  EXPECT_EQ(ByteBuckets().front(), 4096);
}

TEST(MetricsTest, StateFamiliesCarryTheProcessLabelsAndRenderSorted) {
  MetricSet set(ProcessLabels("tiny", "decode", "decode-0"));
  set.Gauge("tandem:zeta", "last", 2.5);
  set.Counter("tandem:alpha_total", "first", 3, {{"to", "up"}});
  set.Counter("tandem:alpha_total", "first", 1, {{"to", "down"}});
  const std::string text = RenderMetrics(set.families());
  EXPECT_LT(text.find("tandem:alpha_total"), text.find("tandem:zeta"));
  EXPECT_EQ(SampleValue(text, "tandem:alpha_total{model_name=\"tiny\",node_id=\"decode-0\",role=\"decode\",to=\"up\"}"),
            3);
  EXPECT_EQ(
      SampleValue(text, "tandem:alpha_total{model_name=\"tiny\",node_id=\"decode-0\",role=\"decode\",to=\"down\"}"), 1);
  EXPECT_EQ(SampleValue(text, "tandem:zeta{"), 2.5);
  EXPECT_EQ(MetricFamilies(text), (std::set<std::string>{"tandem:alpha_total", "tandem:zeta"}));
  // A router has no node_id label.
  EXPECT_EQ(ProcessLabels("m", "router").count("node_id"), 0u);
}

TEST(MetricsTest, PromtoolFindsNothingButTheVllmStyleColon) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildHistogram()
      .Name("tandem:some_latency_seconds")
      .Help("a histogram")
      .Labels(ProcessLabels("tiny", "router"))
      .Register(*registry)
      .Add({}, TokenLatencyBuckets())
      .Observe(0.02);
  MetricSet set(ProcessLabels("tiny", "router"));
  set.Gauge("tandem:num_requests_running", "running", 1);
  auto families = registry->Collect();
  for (auto& f : set.families()) families.push_back(f);
  const auto r =
      testing::PromtoolCheck(RenderMetrics(families), "/tmp/tandem_metrics_test_" + std::to_string(::getpid()));
  if (!r.available) GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  EXPECT_EQ(r.problems, "");
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    prometheus::BuildCounter().Name("tandem:things_total").Help("things").Register(*registry_).Add({}).Increment(7);
  }
  std::shared_ptr<prometheus::Registry> registry_;
};

TEST_F(MetricsEndpointTest, ServesTheRegistryAtSlashMetricsOnly) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1", 0, registry_);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status().ToString();
  const uint16_t port = (*endpoint)->port();
  ASSERT_NE(port, 0);
  const auto ok = HttpGet(port, "/metrics");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(SampleValue(ok.body, "tandem:things_total"), 7);
  EXPECT_EQ(HttpGet(port, "/metrics?x=1").status, 200);
  EXPECT_EQ(HttpGet(port, "/").status, 404);
  EXPECT_EQ(HttpGet(port, "/metrics", "POST").status, 405);
  // Each scrape is current.
  prometheus::BuildCounter().Name("tandem:later_total").Help("later").Register(*registry_).Add({}).Increment();
  EXPECT_EQ(SampleValue(HttpGet(port, "/metrics").body, "tandem:later_total"), 1);
}

TEST_F(MetricsEndpointTest, ATakenPortOrABadHostIsAClearError) {
  auto first = MetricsEndpoint::Start("127.0.0.1", 0, registry_);
  ASSERT_TRUE(first.ok());
  auto second = MetricsEndpoint::Start("127.0.0.1", (*first)->port(), registry_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(std::to_string((*first)->port())), std::string::npos);
  auto bad = MetricsEndpoint::Start("not-an-address", 0, registry_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsEndpoint::Start("127.0.0.1", 70000, registry_).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(MetricsEndpointTest, StopsCleanlyWithAClientConnected) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1", 0, registry_);
  ASSERT_TRUE(endpoint.ok());
  // A connection that sends nothing must not keep the destructor waiting.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons((*endpoint)->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  endpoint->reset();
  ::close(fd);
}

}  // namespace
}  // namespace tandem
