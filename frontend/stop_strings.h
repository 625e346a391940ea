// Stop strings matched on the detokenized text, as vLLM does (include_stop_str_in_output off):
// the output ends just before the earliest occurrence of any stop string, which itself is not
// emitted. Text arrives in pieces (one per token, or less while a UTF-8 character is
// incomplete), so a stop string may be split across pieces; while the text emitted so far ends
// in something that could be the start of a stop string, that tail is held back.
//
// Invariant: no stop string ever starts inside text already returned by Add. (If it did, the
// text from its start to the end of the buffer was a proper prefix of it at the time and would
// have been held back.) So only the held-back tail plus the new piece needs searching.
//
// Stop strings are non-empty, valid UTF-8 (they come from JSON); a held-back tail is a prefix of
// one, so text is always cut at a character boundary.
// Threading: one matcher per request, used by one thread at a time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class StopStringMatcher {
 public:
  // REQUIRES: no string in `stops` is empty.
  explicit StopStringMatcher(std::vector<std::string> stops = {});

  // Adds decoded text; returns the text that is now safe to emit. Once a stop string matched,
  // returns the text before it and stopped() turns true; later calls return "".
  std::string Add(std::string_view text);
  // End of generation without a match: returns whatever is still held back.
  std::string Flush();

  bool stopped() const { return stopped_; }
  // The stop string that matched ("" until stopped()).
  const std::string& matched() const { return matched_; }
  // Bytes currently held back.
  size_t held_back() const { return pending_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // held-back tail: a proper prefix of some stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace tandem
