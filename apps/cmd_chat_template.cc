// `tandem chat-template`: renders a conversation with a model's chat template, printing the
// prompt exactly (no trailing newline) so that it can be diffed against transformers.
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/command.h"
#include "tokenizer/chat_template.h"

namespace tandem {
namespace {

struct ChatTemplateArgs {
  std::string model_dir;
  std::string messages_path;
  std::string tools_path;
  std::string template_name = "default";
  bool add_generation_prompt = false;
  bool enable_thinking_set = false;
  bool enable_thinking = true;
};

Result<nlohmann::ordered_json> ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::ordered_json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError("parsing " + path + ": " + e.what());
  }
}

Result<std::string> RunChatTemplate(const ChatTemplateArgs& args) {
  ASSIGN_OR_RETURN(ChatTemplateSource src, LoadChatTemplate(args.model_dir, args.template_name));
  ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::Parse(src.source));
  ASSIGN_OR_RETURN(nlohmann::ordered_json messages, ReadJson(args.messages_path));
  // A file may hold the bare message list or an OpenAI-style request with "messages"/"tools".
  nlohmann::ordered_json tools = nullptr;
  if (messages.is_object()) {
    if (messages.contains("tools")) tools = messages["tools"];
    nlohmann::ordered_json inner = messages.value("messages", nlohmann::ordered_json());
    messages = std::move(inner);
  }
  if (!args.tools_path.empty()) {
    ASSIGN_OR_RETURN(tools, ReadJson(args.tools_path));
  }
  nlohmann::ordered_json extra = src.special_tokens;
  if (args.enable_thinking_set) extra["enable_thinking"] = args.enable_thinking;
  return tmpl.Render(messages, tools, args.add_generation_prompt, extra);
}

std::pair<CLI::App*, CommandRunner> SetupChatTemplate(CLI::App& app) {
  auto args = std::make_shared<ChatTemplateArgs>();
  auto* sub = app.add_subcommand("chat-template", "Render a conversation with a model's chat template");
  sub->add_option("--model", args->model_dir, "Model or tokenizer directory")->required();
  sub->add_option("--messages", args->messages_path, "JSON file: a list of messages")->required();
  sub->add_option("--tools", args->tools_path, "JSON file: a list of tool schemas");
  sub->add_option("--template-name", args->template_name, "Named template from tokenizer_config.json");
  sub->add_flag("--add-generation-prompt", args->add_generation_prompt, "End with the assistant header");
  sub->add_option_function<bool>(
      "--enable-thinking",
      [args](const bool& v) {
        args->enable_thinking_set = true;
        args->enable_thinking = v;
      },
      "Pass enable_thinking=true|false to the template");
  return {sub, [args] {
            Result<std::string> prompt = RunChatTemplate(*args);
            if (!prompt.ok()) return ReportError(prompt.status());
            std::cout << *prompt << std::flush;
            return 0;
          }};
}

TANDEM_REGISTER_COMMAND(SetupChatTemplate);

}  // namespace
}  // namespace tandem
