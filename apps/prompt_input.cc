#include "apps/prompt_input.h"

#include <charconv>

#include "tokenizer/chat_template.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

Result<std::vector<int32_t>> ParseTokenIds(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    int32_t id = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || id < 0) {
      return InvalidArgumentError("--prompt-ids: '" + item + "' is not a non-negative token id");
    }
    ids.push_back(id);
    pos = comma + 1;
  }
  return ids;
}

}  // namespace tandem

namespace tandem {
namespace {

class TokenizerStreamer : public TextStreamer {
 public:
  TokenizerStreamer(std::unique_ptr<Tokenizer> tokenizer, std::vector<int32_t> prompt)
      : tokenizer_(std::move(tokenizer)), prompt_(std::move(prompt)), decoder_(*tokenizer_, true, prompt_) {}
  std::string Add(int32_t token) override { return decoder_.Step(token); }
  std::string Finish() override { return decoder_.Flush(); }

 private:
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> prompt_;
  IncrementalDecoder decoder_;
};

}  // namespace

Result<std::unique_ptr<TextStreamer>> PromptInput::MakeStreamer() const {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromModelDir(model_dir));
  return std::unique_ptr<TextStreamer>(new TokenizerStreamer(std::move(tokenizer), ids));
}

Result<PromptInput> PreparePrompt(const std::string& model_dir, const std::string& text,
                                  const std::string& ids_csv, bool chat) {
  PromptInput input;
  input.model_dir = model_dir;
  if (!ids_csv.empty()) {
    if (chat) return InvalidArgumentError("--chat needs a text --prompt, not --prompt-ids");
    ASSIGN_OR_RETURN(input.ids, ParseTokenIds(ids_csv));
    return input;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromModelDir(model_dir));
  if (!chat) {
    ASSIGN_OR_RETURN(input.ids, tokenizer->Encode(text, /*add_special_tokens=*/true));
  } else {
    ASSIGN_OR_RETURN(ChatTemplateSource source, LoadChatTemplate(model_dir));
    ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::Parse(source.source));
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", text}});
    ASSIGN_OR_RETURN(std::string rendered, tmpl.Render(messages, nullptr, true, source.special_tokens));
    // As transformers' apply_chat_template(tokenize=True): the template already placed BOS.
    ASSIGN_OR_RETURN(input.ids, tokenizer->Encode(rendered, /*add_special_tokens=*/false));
  }
  if (input.ids.empty()) return InvalidArgumentError("the prompt encodes to no tokens");
  return input;
}

}  // namespace tandem
