// Hugging Face chat templates: renders a conversation to the prompt text exactly as
// transformers' tokenizer.apply_chat_template(..., tokenize=False) does, byte for byte.
//
// The reference is jinja2 in an ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]) with transformers' tojson (ensure_ascii=False,
// indent/separators/sort_keys), raise_exception, strftime_now and namespace. This is a
// from-scratch interpreter for the Jinja subset real templates use (tokenizer/jinja_*).
// Anything outside the subset fails with the construct's line and column; it never renders
// something different from the reference.
//
// Inputs are normalised like apply_chat_template (transformers 5): message keys whose value
// is null are dropped, and a message's reasoning given as reasoning_content, thinking or
// reasoning is visible under both `thinking` and `reasoning_content`.
//
// Key order matters (tool schemas go through |tojson and dicts iterate in insertion order),
// so the inputs are nlohmann::ordered_json; parse request bodies with ordered_json. A plain
// nlohmann::json converts implicitly but has already lost the client's key order.
//
// A parsed ChatTemplate is immutable and may be rendered from several threads at once.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace tandem {

namespace jinja {
struct Stmt;
}

class ChatTemplate {
 public:
  // INVALID_ARGUMENT with "line L, column C" on syntax errors, unknown filters or tests, and
  // tags outside the subset ({% include %}, {% extends %}, {% call %}, ...).
  static Result<ChatTemplate> Parse(std::string source);

  // messages: array of message objects. tools: null (no tools) or an array of tool schemas.
  // extra: object of additional template variables: bos_token, eos_token and the other
  // special tokens, enable_thinking, ... (null or empty for none).
  // Errors: INVALID_ARGUMENT, with the template's message for raise_exception() and with
  // the line and column of the failing construct for everything else.
  Result<std::string> Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                             bool add_generation_prompt, const nlohmann::ordered_json& extra) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
};

// The template and special tokens a model directory provides.
struct ChatTemplateSource {
  std::string source;
  std::string bos_token;  // empty when the tokenizer has none
  std::string eos_token;
  // transformers' special_tokens_map: every one of bos/eos/unk/sep/pad/cls/mask_token that is
  // set, as strings; pass it as `extra` to see what apply_chat_template's template sees.
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
};

// Reads `chat_template.jinja` from model_dir when present, else tokenizer_config.json's
// `chat_template`: a string, or a list of {name, template} from which `name` is taken.
// Special tokens come from tokenizer_config.json (strings or {"content": ...} objects).
Result<ChatTemplateSource> LoadChatTemplate(const std::string& model_dir, const std::string& name = "default");

}  // namespace tandem
