// The multi-turn workload: conversations of the asked shape, turns composed from the
// conversation so far (completions text and chat messages), later turns sent only after the
// answer they continue (plus the think time), and a failed turn failing the rest unsent.
#include "loadgen/multi_turn.h"

#include <gtest/gtest.h>

#include "loadgen/bench_runner.h"
#include "tests/loadgen/builtin_tokenizer.h"
#include "tests/loadgen/scripted_server.h"

namespace tandem::loadgen {
namespace {

using testing::BuiltinTokenizer;

TEST(MultiTurnWorkloadTest, ConversationsOfTheAskedShape) {
  WorkloadOptions o;
  o.dataset_name = "multi-turn";
  o.num_prompts = 10;
  o.multi_turn_turns = 4;
  o.multi_turn_system_len = 32;
  o.random_input_len = 20;
  o.random_output_len = 8;
  o.tokenizer = &BuiltinTokenizer();
  auto w = LoadWorkload(o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_EQ(w->requests.size(), 10u);  // 4 + 4 + 2
  for (size_t i = 0; i < w->requests.size(); ++i) {
    const BenchRequest& r = w->requests[i];
    const int turn = static_cast<int>(i % 4);
    EXPECT_EQ(r.turn, turn);
    EXPECT_EQ(r.previous_turn, turn == 0 ? -1 : static_cast<int64_t>(i) - 1);
    EXPECT_FALSE(r.prompt_text.empty());
    EXPECT_EQ(r.output_len, 8);
    EXPECT_EQ(r.system_text.empty(), turn != 0);
  }
  EXPECT_EQ(w->requests[0].system_text, w->requests[4].system_text);  // shared by all
  EXPECT_NE(w->requests[0].prompt_text, w->requests[4].prompt_text);

  o.tokenizer = nullptr;
  EXPECT_EQ(LoadWorkload(o).status().code(), StatusCode::kInvalidArgument);
  o.tokenizer = &BuiltinTokenizer();
  o.multi_turn_turns = 0;
  EXPECT_EQ(LoadWorkload(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(MultiTurnWorkloadTest, ATurnIsTheConversationSoFarPlusItsMessage) {
  BenchRequest first;
  first.system_text = "You are terse.";
  first.prompt_text = "Hi";
  BenchRequest second;
  second.prompt_text = "More";
  second.previous_turn = 0;
  const ComposedTurn a = ComposeTurn(first, nullptr, "");
  EXPECT_EQ(a.prompt_text, "You are terse.\n\nHi");
  ASSERT_EQ(a.messages.size(), 2u);
  EXPECT_EQ(a.messages[0], (std::pair<std::string, std::string>{"system", "You are terse."}));
  const ComposedTurn b = ComposeTurn(second, &a, " Hello.");
  EXPECT_EQ(b.prompt_text, "You are terse.\n\nHi Hello.\n\nMore");
  ASSERT_EQ(b.messages.size(), 4u);
  EXPECT_EQ(b.messages[2], (std::pair<std::string, std::string>{"assistant", " Hello."}));
  EXPECT_EQ(b.messages[3], (std::pair<std::string, std::string>{"user", "More"}));

  RunOptions options;
  options.model = "m";
  options.endpoint.path = "/v1/chat/completions";
  const auto body = BuildRequestBody(second, options, &b);
  ASSERT_EQ(body["messages"].size(), 4u);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  options.endpoint.path = "/v1/completions";
  EXPECT_EQ(BuildRequestBody(second, options, &b)["prompt"], b.prompt_text);
}

TEST(MultiTurnRunnerTest, LaterTurnsWaitForTheAnswerAndAFailureEndsTheConversation) {
  tandem::testing::ScriptedServer server;
  std::vector<BenchRequest> requests(5);
  requests[0].prompt_text = "hello";  // conversation 0: three turns
  requests[1].prompt_text = "again";
  requests[1].previous_turn = 0;
  requests[1].turn = 1;
  requests[2].prompt_text = "more";
  requests[2].previous_turn = 1;
  requests[2].turn = 2;
  requests[3].prompt_text = "error";  // conversation 1: its first turn fails (HTTP 400)
  requests[4].prompt_text = "never sent";
  requests[4].previous_turn = 3;
  requests[4].turn = 1;
  for (auto& r : requests) r.output_len = 3;
  RunOptions o;
  o.endpoint.port = server.port();
  o.model = "scripted";
  o.request_timeout_s = 5;
  o.multi_turn_think_s = 0.2;
  // Two first turns: schedule entries 0 and 1 are theirs (entry k: the k-th first turn).
  auto run = RunBenchmark(requests, {0.0, 0.05, 9, 9, 9}, o);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  const auto& r = run->results;
  ASSERT_EQ(r.size(), 5u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r[i].success) << i << ": " << r[i].error;
  EXPECT_GE(r[1].sent_s, r[0].done_s + 0.19);
  EXPECT_GE(r[2].sent_s, r[1].done_s + 0.19);
  EXPECT_EQ(r[2].turn, 2);
  EXPECT_LT(r[3].sent_s, 1.0);  // on the schedule's second entry, not its fourth
  EXPECT_FALSE(r[3].success);
  EXPECT_FALSE(r[4].success);
  EXPECT_EQ(r[4].error, "an earlier turn of its conversation failed");
  EXPECT_LT(run->duration_s, 5.0);
}

}  // namespace
}  // namespace tandem::loadgen
