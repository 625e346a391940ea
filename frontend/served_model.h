// What the router needs to speak for a model: its public name, tokenizer, chat template and
// limits. Loaded once at start-up; immutable and shared by every connection thread afterwards.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "model/model_config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "frontend/openai_protocol.h"

namespace tandem {

struct ServedModel {
  std::string name;       // what clients put in "model"
  std::string model_dir;
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat_template;  // nullopt when the model ships none
  std::string chat_template_error;            // why there is none (answered to chat requests)
  nlohmann::ordered_json template_extra;      // special tokens the template may use
  ProtocolLimits limits;
};

// Loads the tokenizer and chat template of `model_dir`. `served_name` empty: the directory's
// base name. A missing chat template is not an error (chat requests then get a 400).
Result<std::shared_ptr<const ServedModel>> LoadServedModel(const std::string& model_dir, std::string served_name,
                                                           const ModelConfig& config);

}  // namespace tandem
