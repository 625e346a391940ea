// Server-sent events (text/event-stream) as OpenAI streams them: every event is one
// "data: <compact JSON>\n\n", and the stream ends with "data: [DONE]\n\n".
// The parser is the client side (tests, tandem bench in loadgen/), following the WHATWG rules that
// matter here: "\n", "\r\n" or "\r" end a line; "data:" lines (one optional space after the
// colon) accumulate, joined by "\n"; a blank line dispatches; ":" lines are comments; other
// fields (event, id, retry) are ignored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem {

inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// "data: <payload>\n\n". A payload with line breaks becomes several data lines, so the
// receiver reassembles exactly `payload` (compact JSON never has any).
std::string SseData(std::string_view payload);

class SseParser {
 public:
  // Feeds bytes as they arrive, split anywhere (even inside "\r\n").
  void Feed(std::string_view bytes);
  // Payloads of the events completed so far, in order; removes them.
  std::vector<std::string> TakeEvents();

 private:
  void ProcessLine(std::string_view line);

  std::string line_;         // the current, unfinished line
  bool last_was_cr_ = false; // a "\r" ended the previous line: a following "\n" belongs to it
  std::string data_;         // data of the event being built
  bool has_data_ = false;
  std::vector<std::string> events_;
};

}  // namespace tandem
