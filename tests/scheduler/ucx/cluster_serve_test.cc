// `tandem serve` end to end: real `tandem prefill` / `tandem decode` children (KV over UCX),
// the router in the serve process, one streaming chat completion (--demo-request). The reply
// must equal single-process `tandem generate` on the same chat prompt (greedy), token for token
// (compared as text: the same ids detokenize to the same text). Labelled `ucx`.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

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
  static void TearDownTestSuite() { delete suite_; }
  // `served`, the reply, equals greedy single-process `tandem generate` on the chat prompt.
  static void ExpectSameAsGenerate(const std::string& model, const std::string& prompt, const std::string& served);
  static testing::SuiteDir* suite_;
};
testing::SuiteDir* ClusterServeTest::suite_ = nullptr;

// Plain TCP, then with --tls: every control connection (router -> nodes, prefill -> decode)
// speaks TLS 1.3 with the certificate serve made, and the tokens are the same.
TEST_F(ClusterServeTest, DemoRequestMatchesSingleProcessGenerate) {
  for (const bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "--tls" : "plain");
    const std::string model = suite_->model();
    const std::string prompt = "Tell me about prefill and decode.";
    const std::string logs = suite_->dir() + (tls ? "/logs-tls" : "/logs");
    const RunResult served =
        RunCommand(Tandem() + " serve --model " + model + " --num-prefill 2 --num-decode 2 --port 0 --node-threads 1" +
                   " --log-dir " + logs + " --demo-request --demo-max-tokens 40 --demo-prompt '" + prompt + "'" +
                   (tls ? " --tls" : "") + " 2>" + logs + ".err");
    ASSERT_EQ(served.exit_code, 0) << served.out << testing::ReadFile(logs + ".err");
    const std::string serve_log = testing::ReadFile(logs + ".err");
    const std::string decode_log = testing::ReadFile(logs + "/decode-0.log");
    // The router's two prefill and two decode connections, and each prefill node's to decode-0.
    for (const std::string* log : {&serve_log, &decode_log}) {
      EXPECT_NE(log->find(tls ? ", TLSv1.3)" : ", plain TCP)"), std::string::npos) << *log;
      EXPECT_EQ(log->find(tls ? ", plain TCP)" : ", TLSv1.3)"), std::string::npos) << *log;
    }
    ExpectSameAsGenerate(model, prompt, served.out);
  }
}

void ClusterServeTest::ExpectSameAsGenerate(const std::string& model, const std::string& prompt,
                                            const std::string& served) {
  const RunResult reference = RunCommand(Tandem() + " generate --model " + model + " --chat --prompt '" + prompt +
                                         "' --max-tokens 40 --temperature 0 2>/dev/null");
  ASSERT_EQ(reference.exit_code, 0);
  auto strip = [](std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  };
  EXPECT_FALSE(strip(served).empty());
  EXPECT_EQ(strip(served), strip(reference.out));
}

TEST_F(ClusterServeTest, NodeThatCannotStartFailsServeWithItsError) {
  const std::string bad = suite_->dir() + "/not-a-model";
  fs::create_directories(bad);
  const RunResult r =
      RunCommand(Tandem() + " serve --model " + bad + " --port 0 --log-dir " + suite_->dir() + "/badlogs 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("exited during start-up"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("config.json"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace tandem
