// libFuzzer target: arbitrary bytes as tokenizer.json content, loaded with
// Tokenizer::FromJsonString (what FromFile calls after reading the file: JSON, BPE model,
// normalizer, pre-tokenizer with its PCRE2 regexes, post-processor, decoder, added tokens). When
// it loads, a text is encoded (with and without special tokens) and the ids decoded, at once and
// streaming. Loading must return OK or an error for every input; nothing may crash, hang or leak.
//
// Input: the tokenizer.json text, optionally followed by a NUL byte and the text to encode
// (without one, a fixed sample with spaces, digits, punctuation, accents and CJK is used).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

namespace {

constexpr std::string_view kSample = "Hello, world!  It's 2024: caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd <s>x</s>\n\tok";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? kSample : input.substr(nul + 1);

  tandem::Result<std::unique_ptr<tandem::Tokenizer>> loaded = tandem::Tokenizer::FromJsonString(json, "fuzz.json");
  if (!loaded.ok()) {
    FUZZ_CHECK(loaded.status().message().find("fuzz.json") != std::string::npos);  // errors name the source
    return 0;
  }
  const tandem::Tokenizer& tok = **loaded;
  FUZZ_CHECK(tok.IdLimit() > 0 || tok.VocabSize() == 0);
  for (bool special : {false, true}) {
    tandem::Result<std::vector<tandem::TokenId>> ids = tok.Encode(text, special);
    if (!ids.ok()) continue;  // regex engine limits (e.g. PCRE2's match limit)
    for (tandem::TokenId id : *ids) FUZZ_CHECK(id >= 0);
    (void)tok.Decode(*ids, /*skip_special_tokens=*/false);
    (void)tok.Decode(*ids, /*skip_special_tokens=*/true);
    tandem::IncrementalDecoder stream(tok, /*skip_special_tokens=*/special);
    for (tandem::TokenId id : *ids) (void)stream.Step(id);
    (void)stream.Flush();
  }
  return 0;
}
