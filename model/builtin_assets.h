// The built-in tokenizer, compiled into the binary so that `tandem make-model` and
// `tandem serve --demo` work with no files around. The bytes are model/assets/tokenizer.json
// and model/assets/tokenizer_config.json (trained by tools/train_tokenizer.py), embedded by
// model/assets/embed_assets.cmake at build time; editing an asset regenerates the source.
#pragma once

#include <string_view>

namespace tandem {

// Byte-level BPE, 32000 tokens; ids 0..4 are <|begin_of_text|>, <|end_of_text|>, <|im_start|>,
// <|im_end|>, <|pad|>. Views of static storage: valid for the life of the program.
std::string_view BuiltinTokenizerJson();
// bos <|begin_of_text|>, eos <|im_end|>, pad <|pad|>, ChatML chat_template.
std::string_view BuiltinTokenizerConfigJson();

}  // namespace tandem
