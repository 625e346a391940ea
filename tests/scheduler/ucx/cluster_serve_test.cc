// `tandem serve` end to end: real `tandem prefill` / `tandem decode` children (KV over UCX),
// the router in the serve process, one streaming chat completion (--demo-request). The reply
// must equal single-process `tandem generate` on the same chat prompt (greedy), token for token
// (compared as text: the same ids detokenize to the same text). Labelled `ucx`.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "model/make_model.h"
#include "tests/scheduler/ucx/serve_process.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing::Tandem;

struct RunResult {
  int exit_code = -1;
  std::string out;
};

// Runs a shell command with a bounded wall time (coreutils timeout), capturing stdout.
RunResult RunCommand(const std::string& command) {
  RunResult r;
  FILE* p = ::popen(("timeout -k 5 120 " + command).c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class ClusterServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_ = new testing::SuiteDir("tandem_cluster_serve", 3);
    ASSERT_TRUE(suite_->status().ok()) << suite_->status().ToString();
  }
  static void TearDownTestSuite() {
    delete suite_;
  }
  static testing::SuiteDir* suite_;
};
testing::SuiteDir* ClusterServeTest::suite_ = nullptr;

TEST_F(ClusterServeTest, DemoRequestMatchesSingleProcessGenerate) {
  const std::string model = suite_->model();
  const std::string prompt = "Tell me about prefill and decode.";
  const RunResult served =
      RunCommand(Tandem() + " serve --model " + model + " --num-prefill 2 --num-decode 2 --port 0 --node-threads 1" +
          " --log-dir " + suite_->dir() + "/logs --demo-request --demo-max-tokens 40 --demo-prompt '" + prompt +
          "' 2>" + suite_->dir() + "/serve.err");
  ASSERT_EQ(served.exit_code, 0) << served.out;
  const RunResult reference = RunCommand(Tandem() + " generate --model " + model + " --chat --prompt '" + prompt +
                                  "' --max-tokens 40 --temperature 0 2>/dev/null");
  ASSERT_EQ(reference.exit_code, 0);
  auto strip = [](std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  };
  EXPECT_FALSE(strip(served.out).empty());
  EXPECT_EQ(strip(served.out), strip(reference.out));
}

TEST_F(ClusterServeTest, NodeThatCannotStartFailsServeWithItsError) {
  const std::string bad = suite_->dir() + "/not-a-model";
  fs::create_directories(bad);
  const RunResult r = RunCommand(Tandem() + " serve --model " + bad + " --port 0 --log-dir " + suite_->dir() + "/badlogs 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("exited during start-up"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("config.json"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace tandem
