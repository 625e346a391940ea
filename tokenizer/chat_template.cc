#include "tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_interpreter.h"
#include "tokenizer/jinja_parser.h"

namespace tandem {
namespace {

std::string Where(const jinja::JinjaError& e) {
  if (e.line == 0) return "";
  return " at line " + std::to_string(e.line) + ", column " + std::to_string(e.col);
}

Status FromJinjaError(const jinja::JinjaError& e, const char* phase) {
  if (e.from_raise_exception) {
    return InvalidArgumentError("chat template raise_exception" + Where(e) + ": " + e.message);
  }
  return InvalidArgumentError(std::string("chat template ") + phase + " error" + Where(e) + ": " + e.message);
}

// apply_chat_template drops null-valued message keys; render_jinja_template then aliases the
// reasoning fields: {"thinking": r, **message, "reasoning_content": r}.
jinja::Value NormalizeMessage(const nlohmann::ordered_json& m) {
  if (!m.is_object()) jinja::Fail("chat messages must be JSON objects, got " + std::string(m.type_name()));
  jinja::DictData d;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!it.value().is_null()) d.Set(it.key(), jinja::FromJson(it.value()));
  }
  const jinja::Value* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
    if ((reasoning = d.Find(key))) break;
  }
  if (!reasoning) return jinja::Value::Dict(std::move(d));
  jinja::Value r = *reasoning;
  jinja::DictData aliased;
  aliased.Set("thinking", r);
  for (auto& [k, v] : d.entries) aliased.Set(k, std::move(v));
  aliased.Set("reasoning_content", r);
  return jinja::Value::Dict(std::move(aliased));
}

Result<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A special token in tokenizer_config.json is a string or an AddedToken object.
std::optional<std::string> TokenString(const nlohmann::ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::Parse(std::string source) {
  ChatTemplate t;
  try {
    t.body_ = std::make_shared<const jinja::Body>(jinja::ParseTemplate(source));
  } catch (const jinja::JinjaError& e) {
    return FromJinjaError(e, "syntax");
  }
  t.source_ = std::move(source);
  return t;
}

Result<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                         bool add_generation_prompt, const nlohmann::ordered_json& extra) const {
  if (!body_) return FailedPreconditionError("chat template was not parsed");
  if (!messages.is_array()) return InvalidArgumentError("chat template: messages must be a JSON array");
  if (!tools.is_null() && !tools.is_array()) return InvalidArgumentError("chat template: tools must be null or an array");
  if (!extra.is_null() && !extra.is_object()) return InvalidArgumentError("chat template: extra must be an object");
  try {
    jinja::DictData vars;
    if (extra.is_object()) {
      for (auto it = extra.begin(); it != extra.end(); ++it) {
        const std::string& k = it.key();
        if (k == "messages" || k == "tools" || k == "documents" || k == "add_generation_prompt") {
          return InvalidArgumentError("chat template: extra variable '" + k + "' clashes with a render argument");
        }
        vars.Set(k, jinja::FromJson(it.value()));
      }
    }
    std::vector<jinja::Value> msgs;
    for (const auto& m : messages) msgs.push_back(NormalizeMessage(m));
    if (tools.is_array()) {
      for (const auto& tool : tools) {
        if (!tool.is_object()) return InvalidArgumentError("chat template: each tool must be a JSON object (schema)");
      }
    }
    vars.Set("messages", jinja::Value::List(std::move(msgs)));
    vars.Set("tools", jinja::FromJson(tools));
    vars.Set("documents", jinja::Value::None());
    vars.Set("add_generation_prompt", jinja::Value::Bool(add_generation_prompt));
    return jinja::RenderTemplate(*body_, vars);
  } catch (const jinja::JinjaError& e) {
    return FromJinjaError(e, "render");
  } catch (const std::exception& e) {
    return InternalError(std::string("chat template render: ") + e.what());
  }
}

Result<ChatTemplateSource> LoadChatTemplate(const std::string& model_dir, const std::string& name) {
  namespace fs = std::filesystem;
  ChatTemplateSource out;
  const fs::path dir(model_dir);
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(config_path));
    try {
      config = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      return InvalidArgumentError("parsing " + config_path.string() + ": " + e.what());
    }
    if (!config.is_object()) return InvalidArgumentError(config_path.string() + " is not a JSON object");
  }
  nlohmann::ordered_json legacy = nlohmann::ordered_json::object();
  if (fs::exists(dir / "special_tokens_map.json")) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(dir / "special_tokens_map.json"));
    legacy = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!legacy.is_object()) return InvalidArgumentError("special_tokens_map.json is not a JSON object");
  }
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    std::optional<std::string> tok;
    if (config.contains(key)) tok = TokenString(config[key]);
    if (!tok && legacy.contains(key)) tok = TokenString(legacy[key]);
    if (tok) out.special_tokens[key] = *tok;
  }
  out.bos_token = out.special_tokens.value("bos_token", "");
  out.eos_token = out.special_tokens.value("eos_token", "");

  if (name == "default" && fs::exists(dir / "chat_template.jinja")) {
    ASSIGN_OR_RETURN(out.source, ReadFile(dir / "chat_template.jinja"));
    return out;
  }
  if (name != "default" && fs::exists(dir / "additional_chat_templates" / (name + ".jinja"))) {
    ASSIGN_OR_RETURN(out.source, ReadFile(dir / "additional_chat_templates" / (name + ".jinja")));
    return out;
  }
  if (!config.contains("chat_template") || config["chat_template"].is_null()) {
    return NotFoundError("no chat template in " + model_dir + " (neither chat_template.jinja nor tokenizer_config.json's chat_template)");
  }
  const auto& ct = config["chat_template"];
  if (ct.is_string()) {
    if (name != "default") return NotFoundError("chat template '" + name + "' not found in " + model_dir);
    out.source = ct.get<std::string>();
    return out;
  }
  if (!ct.is_array()) return InvalidArgumentError("tokenizer_config.json: chat_template must be a string or a list");
  std::string names;
  for (const auto& entry : ct) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
        !entry["template"].is_string()) {
      return InvalidArgumentError("tokenizer_config.json: chat_template entries must be {name, template} objects");
    }
    if (entry["name"].get<std::string>() == name) {
      out.source = entry["template"].get<std::string>();
      return out;
    }
    names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
  }
  return NotFoundError("chat template '" + name + "' not found in " + model_dir + " (available: " + names + ")");
}

}  // namespace tandem
