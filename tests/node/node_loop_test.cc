#include "node/node_loop.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace tandem {
namespace {

using namespace std::chrono_literals;

// A node whose work cannot run (requests waiting for a reservation or for blocks) must not spin:
// an iteration that ran no step is followed by the idle wait.
TEST(NodeLoopTest, AnIterationThatRanNothingWaitsInsteadOfSpinning) {
  NodeLoop loop(10ms);
  std::atomic<int> iterations{0};
  loop.Start([&] {
    ++iterations;
    return false;
  });
  std::this_thread::sleep_for(200ms);
  loop.Stop();
  EXPECT_GE(iterations.load(), 2);
  EXPECT_LE(iterations.load(), 40);  // ~20 at 10 ms; a spinning loop makes millions
}

TEST(NodeLoopTest, WorkRunsBackToBackAndPostsWakeTheLoop) {
  NodeLoop loop(1000ms);
  std::atomic<int> steps{0};
  std::atomic<bool> posted{false};
  loop.Start([&] { return ++steps < 100; });  // 100 steps at once, then idle
  for (int i = 0; i < 200 && steps.load() < 100; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_GE(steps.load(), 100);
  const auto t0 = std::chrono::steady_clock::now();
  loop.Post([&] { posted = true; });
  for (int i = 0; i < 200 && !posted.load(); ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(posted.load());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);  // not the 1 s idle wait
  loop.Stop();
}

}  // namespace
}  // namespace tandem
