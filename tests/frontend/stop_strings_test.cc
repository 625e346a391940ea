#include "frontend/stop_strings.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tandem {
namespace {

// Feeds `pieces` one by one; returns everything emitted (Flush included unless stopped).
std::string FeedAll(StopStringMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += m.Add(p);
  out += m.Flush();
  return out;
}

TEST(StopStringMatcherTest, NoStopsPassesEverythingThrough) {
  StopStringMatcher m;
  EXPECT_EQ(m.Add("Hello"), "Hello");
  EXPECT_EQ(m.Add(" world"), " world");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStringMatcherTest, StopInsideOnePieceCutsBeforeIt) {
  StopStringMatcher m({"END"});
  EXPECT_EQ(m.Add("abcENDdef"), "abc");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "END");
  EXPECT_EQ(m.Add("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringMatcherTest, StopSplitAcrossPiecesIsHeldBackThenDropped) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.Add("hello S"), "hello ");  // "S" could start STOP
  EXPECT_EQ(m.held_back(), 1u);
  EXPECT_EQ(m.Add("T"), "");
  EXPECT_EQ(m.Add("O"), "");
  EXPECT_EQ(m.held_back(), 3u);
  EXPECT_EQ(m.Add("P and more"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopStringMatcherTest, FalseStartIsReleased) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.Add("ST"), "");
  EXPECT_EQ(m.Add("AR"), "STAR");  // "STAR" cannot become "STOP"
  EXPECT_EQ(m.Add("S"), "");
  EXPECT_EQ(m.Flush(), "S");  // end of generation: the held tail is real text
  EXPECT_FALSE(m.stopped());
}

TEST(StopStringMatcherTest, OverlappingPrefixKeepsLongestCandidate) {
  // "aab" after "aa": the tail "aa" is a prefix of "aab"; then "a" keeps "aa" pending.
  StopStringMatcher m({"aab"});
  EXPECT_EQ(m.Add("xaa"), "x");
  EXPECT_EQ(m.Add("a"), "a");  // "aaa": only the last "aa" can still start "aab"
  EXPECT_EQ(m.Add("b"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopStringMatcherTest, EarliestOfSeveralStopsWins) {
  StopStringMatcher m({"world", "lo w", "xyz"});
  EXPECT_EQ(FeedAll(m, {"hel", "lo", " wor", "ld"}), "hel");
  EXPECT_EQ(m.matched(), "lo w");
}

TEST(StopStringMatcherTest, EveryByteSplitGivesTheSameResult) {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (size_t split = 0; split <= text.size(); ++split) {
    StopStringMatcher m({"fox jumps", "cat"});
    // one-byte pieces, except that the first `split` bytes come as one
    std::string out = m.Add(text.substr(0, split));
    for (size_t i = split; i < text.size(); ++i) out += m.Add(text.substr(i, 1));
    out += m.Flush();
    EXPECT_EQ(out, "The quick brown ") << "split " << split;
  }
}

TEST(StopStringMatcherTest, MultiByteStopString) {
  StopStringMatcher m({"\xC3\xA9t\xC3\xA9"});  // "été"
  EXPECT_EQ(m.Add("un \xC3\xA9"), "un ");
  EXPECT_EQ(m.Add("t"), "");
  EXPECT_EQ(m.Add("\xC3\xA9 chaud"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopStringMatcherTest, EmptyStopStringsAreIgnored) {
  StopStringMatcher m({""});
  EXPECT_EQ(m.Add("abc"), "abc");
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace tandem
