#include "apps/node_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

namespace tandem {
namespace {

using std::chrono::milliseconds;

std::string LogPath(const std::string& name) { return ::testing::TempDir() + "/child_" + name + ".log"; }

TEST(ClusterNodeProcessTest, ParsesListeningLines) {
  EXPECT_EQ(*ParseListeningLine("listening on 127.0.0.1:4567"), 4567);
  EXPECT_EQ(*ParseListeningLine("listening on http://127.0.0.1:80\r\n"), 80);
  EXPECT_EQ(*ParseListeningLine("listening on [::1]:9000"), 9000);
  for (const char* bad : {"", "listening on", "listening on 127.0.0.1", "listening on 127.0.0.1:0",
                          "listening on 127.0.0.1:99999", "Listening on 127.0.0.1:1", "listening on :5"}) {
    EXPECT_FALSE(ParseListeningLine(bad).ok()) << bad;
  }
}

TEST(ClusterNodeProcessTest, ParsesMetricsLines) {
  EXPECT_EQ(*ParseMetricsLine("metrics on http://127.0.0.1:9464/metrics"), 9464);
  EXPECT_EQ(*ParseMetricsLine("metrics on 127.0.0.1:9464\n"), 9464);
  for (const char* bad : {"", "metrics on", "metrics on http://127.0.0.1/metrics", "listening on 127.0.0.1:5"}) {
    EXPECT_FALSE(ParseMetricsLine(bad).ok()) << bad;
  }
}

TEST(ClusterNodeProcessTest, ReadsThePortAfterOtherOutputAndTerminates) {
  auto child = NodeProcess::Spawn(
      "sh",
      {"/bin/sh", "-c",
       "echo starting; echo oops >&2; sleep 0.1; echo 'metrics on http://127.0.0.1:4322/metrics'; echo 'listening on "
       "127.0.0.1:4321'; exec sleep 30"},
      LogPath("ok"));
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  auto port = (*child)->WaitListening(milliseconds(5000));
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  EXPECT_EQ(*port, 4321);
  EXPECT_EQ((*child)->metrics_port(), 4322);
  EXPECT_TRUE((*child)->Alive());
  EXPECT_EQ((*child)->Terminate(milliseconds(2000)), "signal " + std::to_string(SIGTERM));
  EXPECT_FALSE((*child)->Alive());
  EXPECT_NE((*child)->LogTail().find("oops"), std::string::npos);
}

// serve's router runs while it restarts nodes: a child must not inherit its sockets (found by the
// chaos test: a restarted prefill node held copies of the router's connections to the decode
// nodes, and shutting its own connections down cut the router's).
TEST(ClusterNodeProcessTest, TheChildInheritsNoDescriptorButStdio) {
  const int fd = ::open("/dev/null", O_RDONLY);  // not close-on-exec, like an Asio socket
  ASSERT_GE(fd, 0);
  constexpr int kHigh = 237;
  ASSERT_EQ(::dup2(fd, kHigh), kHigh);
  const std::string check = "[ -e /proc/$$/fd/" + std::to_string(fd) + " ] || [ -e /proc/$$/fd/" +
                            std::to_string(kHigh) + " ] && { echo leaked >&2; exit 3; }; " +
                            "echo 'listening on 127.0.0.1:4321'; exec sleep 30";
  auto child = NodeProcess::Spawn("sh", {"/bin/sh", "-c", check}, LogPath("fds"));
  ::close(fd);
  ::close(kHigh);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  auto port = (*child)->WaitListening(milliseconds(5000));
  EXPECT_TRUE(port.ok()) << port.status().ToString();
  (*child)->Terminate(milliseconds(2000));
}

TEST(ClusterNodeProcessTest, EarlyDeathReportsItsLog) {
  auto child =
      NodeProcess::Spawn("bad-node", {"/bin/sh", "-c", "echo 'error: no such model' >&2; exit 3"}, LogPath("dead"));
  ASSERT_TRUE(child.ok());
  auto port = (*child)->WaitListening(milliseconds(5000));
  ASSERT_FALSE(port.ok());
  EXPECT_EQ(port.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(port.status().message().find("bad-node exited during start-up (exit 3)"), std::string::npos)
      << port.status().ToString();
  EXPECT_NE(port.status().message().find("no such model"), std::string::npos);
}

TEST(ClusterNodeProcessTest, ExecFailureAndSilentChildAreBounded) {
  auto missing = NodeProcess::Spawn("missing", {"/nonexistent/tandem"}, LogPath("missing"));
  ASSERT_TRUE(missing.ok());
  auto r = (*missing)->WaitListening(milliseconds(5000));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exit 127"), std::string::npos) << r.status().ToString();

  auto silent = NodeProcess::Spawn("silent", {"/bin/sh", "-c", "trap '' TERM; exec sleep 30"}, LogPath("silent"));
  ASSERT_TRUE(silent.ok());
  auto t = (*silent)->WaitListening(milliseconds(200));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kDeadlineExceeded);
  // Ignores SIGTERM: killed after the grace period, and reaped.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ((*silent)->Terminate(milliseconds(200)), "signal " + std::to_string(SIGKILL));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

}  // namespace
}  // namespace tandem
