#include "frontend/served_model.h"

#include <filesystem>

namespace tandem {

Result<std::shared_ptr<const ServedModel>> LoadServedModel(const std::string& model_dir, std::string served_name,
                                                           const ModelConfig& config) {
  auto model = std::make_shared<ServedModel>();
  if (served_name.empty()) {
    std::filesystem::path p(model_dir);
    if (!p.has_filename()) p = p.parent_path();  // "dir/" -> "dir"
    served_name = p.filename().string();
  }
  if (served_name.empty()) return InvalidArgumentError("cannot derive a served model name from '" + model_dir + "'");
  model->name = std::move(served_name);
  model->model_dir = model_dir;
  ASSIGN_OR_RETURN(model->tokenizer, Tokenizer::FromModelDir(model_dir));
  Result<ChatTemplateSource> source = LoadChatTemplate(model_dir);
  if (source.ok()) {
    Result<ChatTemplate> parsed = ChatTemplate::Parse(source->source);
    if (!parsed.ok()) return parsed.status().WithContext("parsing the chat template of " + model_dir);
    model->chat_template = std::move(parsed).value();
    model->template_extra = source->special_tokens;
  } else {
    model->chat_template_error = source.status().message();
  }
  model->limits.vocab_size = config.vocab_size;
  model->limits.max_model_len = config.max_position_embeddings;
  return std::shared_ptr<const ServedModel>(std::move(model));
}

}  // namespace tandem
