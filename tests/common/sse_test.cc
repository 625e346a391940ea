#include "common/sse.h"

#include <string>

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(SseTest, FormatsOneDataLine) {
  EXPECT_EQ(SseData(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
}

TEST(SseTest, PayloadWithLineBreaksBecomesSeveralDataLines) {
  EXPECT_EQ(SseData("a\nb\r\nc"), "data: a\ndata: b\ndata: c\n\n");
  SseParser p;
  p.Feed(SseData("a\nb\r\nc"));
  EXPECT_EQ(p.TakeEvents(), (std::vector<std::string>{"a\nb\nc"}));
}

TEST(SseTest, ParserHandlesAnySplitAndLineEnding) {
  const std::string stream = "data: {\"x\":1}\r\n\r\n: comment\n\nevent: e\ndata:{\"y\":2}\r\rdata: [DONE]\n\n";
  for (size_t split = 0; split <= stream.size(); ++split) {
    SseParser p;
    p.Feed(stream.substr(0, split));
    p.Feed(stream.substr(split));
    EXPECT_EQ(p.TakeEvents(), (std::vector<std::string>{"{\"x\":1}", "{\"y\":2}", "[DONE]"})) << "split " << split;
  }
}

TEST(SseTest, IncompleteEventIsNotDispatched) {
  SseParser p;
  p.Feed("data: partial\n");
  EXPECT_TRUE(p.TakeEvents().empty());
  p.Feed("\n");
  EXPECT_EQ(p.TakeEvents(), (std::vector<std::string>{"partial"}));
  EXPECT_TRUE(p.TakeEvents().empty());
}

}  // namespace
}  // namespace tandem
