// Streaming detokenization: feed generated ids one at a time, get the new text of each, never a
// broken UTF-8 sequence. Same scheme as vLLM's detokenize_incrementally: decode the window
// ids[prefix_offset:] and ids[prefix_offset:read_offset], emit the difference once it does not
// end in U+FFFD (an incomplete character decodes to U+FFFD, so the tail is held back until the
// character completes). Decoding a window rather than one token keeps context-dependent
// decoders right (Llama's "▁" -> " " and the strip of the first space). After a ByteFallback
// token ("<0xXX>") nothing is emitted until a non-byte token or Flush(): the reference turns a
// whole run of byte tokens into U+FFFDs when the run is invalid, so a later byte could revise
// characters that already looked complete.
//
// Invariant (tested on every fixture): concatenating every Step() and the final Flush() gives
// exactly Tokenizer::Decode(all ids, skip_special_tokens).
//
// Thread-safety: one IncrementalDecoder per sequence, used by one thread at a time. The
// Tokenizer must outlive it.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tandem {

class IncrementalDecoder {
 public:
  // `prompt_ids` are context only (their text is not emitted): with them the first generated
  // token decodes as it would after the prompt (e.g. with its leading space).
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens,
                     std::span<const TokenId> prompt_ids = {});

  // Adds one id and returns the text it completes (often empty while a character is partial).
  std::string Step(TokenId id);
  // Returns whatever is still held back (e.g. an incomplete tail, as U+FFFD). Call at the end.
  std::string Flush();

 private:
  std::string DecodeRange(size_t begin, size_t end) const;

  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::vector<TokenId> ids_;
  size_t prefix_offset_ = 0;
  size_t read_offset_ = 0;
  std::string prefix_text_;  // DecodeRange(prefix_offset_, read_offset_)
};

}  // namespace tandem
