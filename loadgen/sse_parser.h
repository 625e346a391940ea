// Server-sent events as they arrive in pieces: bytes in, complete events' `data` out. An event
// ends at a blank line; its `data:` lines are joined with "\n" (the SSE rule); lines may end in
// "\n" or "\r\n", and a piece may end anywhere, mid-line included. Comments (":...") and other
// fields (event:, id:, retry:) are skipped: OpenAI-style streams carry everything in `data`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem::loadgen {

class SseParser {
 public:
  // Appends the data of every event that `bytes` completes.
  void Feed(std::string_view bytes, std::vector<std::string>* events);
  // Bytes of an event not yet complete (a stream that ended mid-event).
  bool has_partial() const { return !line_.empty() || has_data_; }

 private:
  void EndLine(std::vector<std::string>* events);

  std::string line_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace tandem::loadgen
