#include "scheduler/cluster_spec.h"

#include <cstdio>

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(ClusterSpecTest, ParsesNodeFlags) {
  auto a = ParseNodeAddress("prefill-0=127.0.0.1:9100");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->id, "prefill-0");
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9100);
  auto v6 = ParseNodeAddress("d=[::1]:65535");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 65535);
}

TEST(ClusterSpecTest, RejectsBadNodeFlags) {
  for (const char* bad : {"127.0.0.1:9100", "=127.0.0.1:9100", "p0=127.0.0.1", "p0=127.0.0.1:", "p0=:9100",
                          "p0=127.0.0.1:0", "p0=127.0.0.1:70000", "p0=127.0.0.1:9x", "p0=[::1:9000"}) {
    auto r = ParseNodeAddress(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ClusterSpecTest, ParsesClusterJson) {
  auto spec = ParseClusterJson(R"({"prefill": [{"id": "prefill-0", "address": "127.0.0.1:9100"},
                                               {"id": "prefill-1", "address": "10.0.0.2:9101"}],
                                   "decode": [{"id": "decode-0", "address": "localhost:9200"}]})",
                               "c.json");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->prefill.size(), 2u);
  ASSERT_EQ(spec->decode.size(), 1u);
  EXPECT_EQ(spec->prefill[1].ToString(), "prefill-1=10.0.0.2:9101");
  EXPECT_EQ(spec->decode[0].host, "localhost");
  EXPECT_TRUE(spec->Validate().ok());
}

TEST(ClusterSpecTest, ClusterJsonErrorsNameTheProblem) {
  auto not_json = ParseClusterJson("{", "c.json");
  ASSERT_FALSE(not_json.ok());
  EXPECT_NE(not_json.status().message().find("c.json"), std::string::npos);
  auto unknown = ParseClusterJson(R"({"workers": []})", "c.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("workers"), std::string::npos);
  auto bad_port = ParseClusterJson(R"({"decode": [{"id": "d0", "address": "h:0"}]})", "c.json");
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(bad_port.status().message().find("decode[0]"), std::string::npos) << bad_port.status().ToString();
  auto missing = ParseClusterJson(R"({"decode": [{"id": "d0"}]})", "c.json");
  EXPECT_FALSE(missing.ok());
  auto file = LoadClusterFile("/nonexistent/cluster.json");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
}

TEST(ClusterSpecTest, ValidateNeedsBothRolesAndUniqueIds) {
  ClusterSpec spec;
  EXPECT_FALSE(spec.Validate().ok());
  spec.prefill.push_back({"n0", "127.0.0.1", 1});
  EXPECT_FALSE(spec.Validate().ok());
  spec.decode.push_back({"n1", "127.0.0.1", 2});
  EXPECT_TRUE(spec.Validate().ok());
  spec.decode.push_back({"n0", "127.0.0.1", 3});
  const Status dup = spec.Validate();
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.message().find("'n0' appears twice"), std::string::npos);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

TEST(ClusterSpecTest, BuildMergesFileAndFlags) {
  const std::string path = ::testing::TempDir() + "/cluster_spec_test.json";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(R"({"prefill": [{"id": "prefill-0", "address": "127.0.0.1:9100"}]})", f);
    std::fclose(f);
  }
  auto spec = BuildClusterSpec({"prefill-1=127.0.0.1:9101"}, {"decode-0=127.0.0.1:9200"}, path);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->prefill.size(), 2u);
  EXPECT_EQ(spec->prefill[0].id, "prefill-0");
  EXPECT_EQ(spec->prefill[1].id, "prefill-1");
  ASSERT_EQ(spec->decode.size(), 1u);

  auto no_decode = BuildClusterSpec({"p=127.0.0.1:1"}, {}, "");
  ASSERT_FALSE(no_decode.ok());
  EXPECT_NE(no_decode.status().message().find("no decode node"), std::string::npos);
  auto bad_flag = BuildClusterSpec({"p=127.0.0.1:1"}, {"d0:127.0.0.1:2"}, "");
  ASSERT_FALSE(bad_flag.ok());
  EXPECT_NE(bad_flag.status().message().find("--decode-node"), std::string::npos) << bad_flag.status().ToString();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tandem
