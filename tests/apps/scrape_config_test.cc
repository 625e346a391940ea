#include "apps/scrape_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace tandem {
namespace {

TEST(ScrapeConfigTest, ListsEveryProcessAndPromtoolAcceptsIt) {
  const std::vector<MetricsTarget> targets = {
      {"router", "127.0.0.1", 8000}, {"decode-0", "127.0.0.1", 41001}, {"prefill-0", "127.0.0.1", 41002}};
  const std::string path = ::testing::TempDir() + "/scrape_" + std::to_string(::getpid()) + ".yml";
  ASSERT_TRUE(WriteScrapeConfig(path, targets, 2).ok());
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  EXPECT_EQ(text.str(), ScrapeConfigYaml(targets, 2));
  EXPECT_NE(text.str().find("scrape_interval: 2s"), std::string::npos);
  for (const auto& t : targets) {
    EXPECT_NE(text.str().find("'127.0.0.1:" + std::to_string(t.port) + "'"), std::string::npos);
    EXPECT_NE(text.str().find("process: '" + t.name + "'"), std::string::npos);
  }
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) GTEST_SKIP() << "promtool is not installed";
  EXPECT_EQ(std::system(("promtool check config " + path + " >/dev/null 2>&1").c_str()), 0);
}

TEST(ScrapeConfigTest, AnUnwritablePathIsAnError) {
  const Status s = WriteScrapeConfig("/nonexistent-dir/x.yml", {}, 5);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("/nonexistent-dir/x.yml"), std::string::npos);
}

}  // namespace
}  // namespace tandem
