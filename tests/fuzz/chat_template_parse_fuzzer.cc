// libFuzzer target: arbitrary bytes as a chat template's source (what a model directory's
// chat_template.jinja or tokenizer_config.json supplies), through ChatTemplate::Parse and, when it
// parses, a render of a fixed conversation with tools and special tokens. Both must return OK or
// an InvalidArgument error for every input: nothing may crash, overflow the stack, leak, or run
// or grow without bound (the engine, not the caller, bounds loops, recursion and output).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tokenizer/chat_template.h"

namespace {

using nlohmann::ordered_json;

const ordered_json& Messages() {
  static const ordered_json* m = new ordered_json(ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4", "reasoning_content": "add",
     "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
    {"role": "tool", "content": "4", "tool_call_id": "c1"},
    {"role": "user", "content": [{"type": "text", "text": "and 3+3?"}]}
  ])"));
  return *m;
}

const ordered_json& Tools() {
  static const ordered_json* t = new ordered_json(ordered_json::parse(R"([
    {"type": "function", "function": {"name": "add", "description": "Adds.",
     "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
  ])"));
  return *t;
}

const ordered_json& Extra() {
  static const ordered_json* e = new ordered_json(
      ordered_json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"enable_thinking", true}, {"date_string", "1 Jan"}});
  return *e;
}

void CheckStatus(const tandem::Status& st) {
  if (st.ok() || st.code() == tandem::StatusCode::kInvalidArgument) return;
  std::fprintf(stderr, "unexpected status: %s\n", st.ToString().c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tandem::Result<tandem::ChatTemplate> parsed =
      tandem::ChatTemplate::Parse(std::string(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) {
    CheckStatus(parsed.status());
    return 0;
  }
  CheckStatus(parsed->Render(Messages(), Tools(), /*add_generation_prompt=*/true, Extra()).status());
  return 0;
}
