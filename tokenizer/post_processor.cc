#include "tokenizer/post_processor.h"

namespace tandem::tokenizer {
namespace {

// The single-sequence template flattened: runs of fixed ids around the one sequence slot.
class TemplateProcessor : public PostProcessor {
 public:
  TemplateProcessor(std::vector<TokenId> before, std::vector<TokenId> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void Process(std::vector<TokenId>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  size_t AddedCount() const override { return before_.size() + after_.size(); }

 private:
  std::vector<TokenId> before_, after_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void Process(std::vector<TokenId>& ids) const override {
    for (const auto& p : parts_) p->Process(ids);
  }
  size_t AddedCount() const override {
    size_t n = 0;
    for (const auto& p : parts_) n += p->AddedCount();
    return n;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

Result<TokenId> ParseTokenPair(const Json& json, const char* key, const std::string& path) {
  const Json* v = FindField(json, key);
  const std::string field = JoinPath(path, key);
  if (v == nullptr) return FieldError(field, "missing");
  if (!v->is_array() || v->size() != 2 || !(*v)[1].is_number_integer()) {
    return FieldError(field, "expected [\"token\", id]");
  }
  return static_cast<TokenId>((*v)[1].get<int64_t>());
}

Result<std::unique_ptr<PostProcessor>> ParseTemplate(const Json& json, const std::string& path) {
  ASSIGN_OR_RETURN(const Json* single, GetArray(json, "single", path));
  const Json* specials = FindField(json, "special_tokens");
  std::vector<TokenId> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& piece = (*single)[i];
    const std::string piece_path = path + ".single[" + std::to_string(i) + "]";
    if (const Json* seq = FindField(piece, "Sequence")) {
      const Json* id = FindField(*seq, "id");
      if (id == nullptr || !id->is_string() || id->get<std::string>() != "A") {
        return FieldError(piece_path + ".Sequence.id", "expected \"A\" in a single template");
      }
      if (seen_sequence) return FieldError(piece_path, "sequence A appears twice");
      seen_sequence = true;
      continue;
    }
    const Json* special = FindField(piece, "SpecialToken");
    if (special == nullptr) return FieldError(piece_path, "expected SpecialToken or Sequence");
    ASSIGN_OR_RETURN(std::string name, GetString(*special, "id", piece_path + ".SpecialToken"));
    const Json* entry = specials == nullptr ? nullptr : FindField(*specials, name);
    if (entry == nullptr) {
      return FieldError(path + ".special_tokens", "no entry for '" + name + "' used by the template");
    }
    const std::string entry_path = path + ".special_tokens[\"" + name + "\"]";
    ASSIGN_OR_RETURN(const Json* ids, GetArray(*entry, "ids", entry_path));
    for (const Json& id : *ids) {
      if (!id.is_number_integer()) return FieldError(entry_path + ".ids", "expected integers");
      (seen_sequence ? after : before).push_back(static_cast<TokenId>(id.get<int64_t>()));
    }
  }
  if (!seen_sequence) return FieldError(path + ".single", "template has no Sequence A");
  return std::unique_ptr<PostProcessor>(new TemplateProcessor(std::move(before), std::move(after)));
}

}  // namespace

Result<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& json, const std::string& path) {
  ASSIGN_OR_RETURN(std::string type, GetType(json, path));
  if (type == "TemplateProcessing") return ParseTemplate(json, path);
  if (type == "ByteLevel") {
    // Only trims offsets in the reference; ids are unchanged.
    return std::unique_ptr<PostProcessor>(new TemplateProcessor({}, {}));
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    ASSIGN_OR_RETURN(TokenId cls, ParseTokenPair(json, "cls", path));
    ASSIGN_OR_RETURN(TokenId sep, ParseTokenPair(json, "sep", path));
    return std::unique_ptr<PostProcessor>(new TemplateProcessor({cls}, {sep}));
  }
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, GetArray(json, "processors", path));
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(auto part, ParsePostProcessor((*list)[i], path + ".processors[" +
                                                                     std::to_string(i) + "]"));
      parts.push_back(std::move(part));
    }
    return std::unique_ptr<PostProcessor>(new SequenceProcessor(std::move(parts)));
  }
  return FieldError(path + ".type", "post-processor type '" + type + "' is not supported");
}

}  // namespace tandem::tokenizer
