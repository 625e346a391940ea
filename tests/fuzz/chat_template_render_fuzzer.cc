// libFuzzer target: real chat templates (tests/data/chat_templates/templates/*.jinja, read once at
// start-up) rendered with fuzzer-chosen conversations, as the server renders a chat request
// (ChatTemplate::Render with the generation prompt and the model's special tokens as extra).
//
// Input: a JSON value. An array is the message list. An object may carry "messages", "tools",
// "extra" (merged over the special tokens), "add_generation_prompt" and "template" (a template's
// file stem, e.g. "llama3"; otherwise the input's length picks one). Rendering must return the
// text or an InvalidArgument error; nothing may crash, hang or leak, and no exception other
// than the engine's own may escape the interpreter (Render would report it as Internal).
//
// The templates' folder: compiled in as TANDEM_CHAT_TEMPLATE_DIR, or the environment variable
// of that name.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/chat_template.h"

namespace {

using nlohmann::ordered_json;

struct NamedTemplate {
  std::string name;
  tandem::ChatTemplate tmpl;
};

std::vector<NamedTemplate>* g_templates = nullptr;

std::string TemplateDir() {
  if (const char* env = std::getenv("TANDEM_CHAT_TEMPLATE_DIR")) return env;
#ifdef TANDEM_CHAT_TEMPLATE_DIR
  return TANDEM_CHAT_TEMPLATE_DIR;
#else
  return "tests/data/chat_templates/templates";
#endif
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  namespace fs = std::filesystem;
  g_templates = new std::vector<NamedTemplate>();
  const std::string dir = TemplateDir();
  std::vector<fs::path> paths;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".jinja") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const fs::path& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    tandem::Result<tandem::ChatTemplate> t = tandem::ChatTemplate::Parse(ss.str());
    if (!t.ok()) {
      std::fprintf(stderr, "chat_template_render_fuzzer: %s: %s\n", p.c_str(), t.status().ToString().c_str());
      std::abort();
    }
    g_templates->push_back({p.stem().string(), std::move(t).value()});
  }
  if (g_templates->empty()) {
    std::fprintf(stderr, "chat_template_render_fuzzer: no *.jinja in %s (set TANDEM_CHAT_TEMPLATE_DIR)\n", dir.c_str());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ordered_json input = ordered_json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded()) return 0;

  const NamedTemplate* chosen = &(*g_templates)[size % g_templates->size()];
  ordered_json messages = input;
  ordered_json tools = nullptr;
  ordered_json extra = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  bool add_generation_prompt = true;
  if (input.is_object()) {
    messages = input.value("messages", ordered_json::array());
    if (input.contains("tools")) tools = input["tools"];
    if (input.contains("extra") && input["extra"].is_object()) {
      for (const auto& [k, v] : input["extra"].items()) extra[k] = v;
    }
    if (input.contains("add_generation_prompt") && input["add_generation_prompt"].is_boolean()) {
      add_generation_prompt = input["add_generation_prompt"].get<bool>();
    }
    if (input.contains("template") && input["template"].is_string()) {
      for (const NamedTemplate& t : *g_templates) {
        if (t.name == input["template"].get<std::string>()) chosen = &t;
      }
    }
  }
  tandem::Result<std::string> out = chosen->tmpl.Render(messages, tools, add_generation_prompt, extra);
  if (!out.ok()) {
    if (out.status().code() != tandem::StatusCode::kInvalidArgument) {
      std::fprintf(stderr, "unexpected render status: %s\n", out.status().ToString().c_str());
      std::abort();
    }
  }
  return 0;
}
