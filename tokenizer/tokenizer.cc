#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "common/logging.h"
#include "tokenizer/unicode_util.h"

namespace tandem {

using tokenizer::AddedToken;
using tokenizer::FieldError;
using tokenizer::FindField;
using tokenizer::GetBoolOr;
using tokenizer::Json;

namespace {

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return DataLossError("error reading " + path);
  return ss.str();
}

Result<Json> ParseJson(std::string_view text, std::string_view source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return InvalidArgumentError(std::string(source) + ": malformed JSON: " + e.what());
  }
}

Result<std::vector<AddedToken>> ParseAddedTokens(const Json& root) {
  std::vector<AddedToken> tokens;
  const Json* list = FindField(root, "added_tokens");
  if (list == nullptr) return tokens;
  if (!list->is_array()) return FieldError("added_tokens", "expected an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& t = (*list)[i];
    const std::string path = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) return FieldError(path, "expected an object");
    AddedToken a;
    const Json* id = FindField(t, "id");
    if (id == nullptr || !id->is_number_integer() || id->get<int64_t>() < 0 ||
        id->get<int64_t>() > INT32_MAX) {
      return FieldError(path + ".id", "expected a non-negative integer");
    }
    a.id = static_cast<TokenId>(id->get<int64_t>());
    ASSIGN_OR_RETURN(a.content, tokenizer::GetString(t, "content", path));
    ASSIGN_OR_RETURN(a.single_word, GetBoolOr(t, "single_word", path, false));
    ASSIGN_OR_RETURN(a.lstrip, GetBoolOr(t, "lstrip", path, false));
    ASSIGN_OR_RETURN(a.rstrip, GetBoolOr(t, "rstrip", path, false));
    ASSIGN_OR_RETURN(a.special, GetBoolOr(t, "special", path, false));
    ASSIGN_OR_RETURN(a.normalized, GetBoolOr(t, "normalized", path, !a.special));
    tokens.push_back(std::move(a));
  }
  return tokens;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromJsonString(std::string_view text,
                                                             std::string_view source) {
  ASSIGN_OR_RETURN(Json root, ParseJson(text, source));
  auto wrap = [&](const Status& s) { return s.WithContext(std::string(source)); };
  if (!root.is_object()) return wrap(InvalidArgumentError("expected a JSON object at the top level"));
  std::unique_ptr<Tokenizer> tok(new Tokenizer());

  const Json* model = FindField(root, "model");
  if (model == nullptr) return wrap(FieldError("model", "missing"));
  if (!model->is_object()) return wrap(FieldError("model", "expected an object"));
  std::string type = "BPE";  // the reference infers the model from its fields when type is absent
  if (const Json* t = FindField(*model, "type")) {
    if (!t->is_string()) return wrap(FieldError("model.type", "expected a string"));
    type = t->get<std::string>();
  }
  if (type != "BPE") {
    return wrap(InvalidArgumentError("model.type '" + type + "' is not supported (only BPE)"));
  }
  auto bpe = tokenizer::BpeModel::FromJson(*model);
  if (!bpe.ok()) return wrap(bpe.status());
  tok->model_ = std::move(bpe).value();

  if (const Json* n = FindField(root, "normalizer")) {
    auto r = tokenizer::ParseNormalizer(*n, "normalizer");
    if (!r.ok()) return wrap(r.status());
    tok->normalizer_ = std::move(r).value();
  }
  if (const Json* p = FindField(root, "pre_tokenizer")) {
    auto r = tokenizer::ParsePreTokenizer(*p, "pre_tokenizer");
    if (!r.ok()) return wrap(r.status());
    tok->pre_tokenizer_ = std::move(r).value();
  }
  if (const Json* p = FindField(root, "post_processor")) {
    auto r = tokenizer::ParsePostProcessor(*p, "post_processor");
    if (!r.ok()) return wrap(r.status());
    tok->post_processor_ = std::move(r).value();
  }
  if (const Json* d = FindField(root, "decoder")) {
    auto r = tokenizer::ParseDecoder(*d, "decoder");
    if (!r.ok()) return wrap(r.status());
    tok->decoder_ = std::move(r).value();
  }
  if (FindField(root, "truncation") != nullptr || FindField(root, "padding") != nullptr) {
    GetLogger("tokenizer")->warn("{}: truncation/padding settings are ignored", source);
  }

  auto added = ParseAddedTokens(root);
  if (!added.ok()) return wrap(added.status());
  std::unordered_set<std::string> distinct;
  size_t id_limit = tok->model_->IdLimit();
  for (const AddedToken& a : *added) {
    if (!tok->model_->TokenToId(a.content).has_value()) distinct.insert(a.content);
    id_limit = std::max(id_limit, static_cast<size_t>(a.id) + 1);
  }
  tok->vocab_size_ = tok->model_->VocabSize() + distinct.size();
  tok->id_limit_ = id_limit;
  auto vocab = tokenizer::AddedVocabulary::Build(std::move(added).value(), tok->normalizer_.get());
  if (!vocab.ok()) return wrap(vocab.status());
  tok->added_ = std::move(vocab).value();
  return tok;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  return FromJsonString(text, path);
}

Result<TokenizerConfig> ParseTokenizerConfig(std::string_view text, std::string_view source) {
  ASSIGN_OR_RETURN(Json root, ParseJson(text, source));
  TokenizerConfig config;
  auto token_name = [&](const char* key) -> Result<std::optional<std::string>> {
    const Json* v = FindField(root, key);
    if (v == nullptr) return std::optional<std::string>();
    if (v->is_string()) return std::optional<std::string>(v->get<std::string>());
    if (v->is_object()) {
      const Json* c = FindField(*v, "content");
      if (c != nullptr && c->is_string()) return std::optional<std::string>(c->get<std::string>());
    }
    return FieldError(std::string(source) + ": " + key, "expected a string or {\"content\": ...}");
  };
  ASSIGN_OR_RETURN(config.bos_token, token_name("bos_token"));
  ASSIGN_OR_RETURN(config.eos_token, token_name("eos_token"));
  ASSIGN_OR_RETURN(config.pad_token, token_name("pad_token"));
  ASSIGN_OR_RETURN(config.unk_token, token_name("unk_token"));
  auto flag = GetBoolOr(root, "add_bos_token", "", false);
  if (!flag.ok()) return flag.status().WithContext(source);
  config.add_bos_token = *flag;
  flag = GetBoolOr(root, "add_eos_token", "", false);
  if (!flag.ok()) return flag.status().WithContext(source);
  config.add_eos_token = *flag;
  return config;
}

Status Tokenizer::ApplyConfig(TokenizerConfig config) {
  auto resolve = [&](const std::optional<std::string>& name, const char* field,
                     std::optional<TokenId>& out) -> Status {
    if (!name.has_value()) return Status::Ok();
    out = TokenToId(*name);
    if (!out.has_value()) {
      return InvalidArgumentError(std::string("tokenizer_config.json: ") + field + " '" + *name +
                                  "' is not a token of tokenizer.json");
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(resolve(config.bos_token, "bos_token", bos_id_));
  RETURN_IF_ERROR(resolve(config.eos_token, "eos_token", eos_id_));
  RETURN_IF_ERROR(resolve(config.pad_token, "pad_token", pad_id_));
  config_ = std::move(config);
  return Status::Ok();
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromModelDir(const std::string& dir) {
  const std::filesystem::path base(dir);
  const std::string json_path = (base / "tokenizer.json").string();
  if (!std::filesystem::exists(json_path)) {
    return NotFoundError(json_path + " not found (only tokenizer.json files are supported)");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, FromFile(json_path));
  const std::string config_path = (base / "tokenizer_config.json").string();
  if (std::filesystem::exists(config_path)) {
    ASSIGN_OR_RETURN(std::string text, ReadWholeFile(config_path));
    ASSIGN_OR_RETURN(TokenizerConfig config, ParseTokenizerConfig(text, config_path));
    RETURN_IF_ERROR(tok->ApplyConfig(std::move(config)));
  }
  return tok;
}

Result<std::vector<TokenId>> Tokenizer::Encode(std::string_view text,
                                               bool add_special_tokens) const {
  std::string sanitized;
  if (!tokenizer::IsValidUtf8(text)) {
    sanitized = tokenizer::SanitizeUtf8(text);
    text = sanitized;
  }
  std::vector<tokenizer::Piece> pieces;
  RETURN_IF_ERROR(added_.ExtractAndNormalize(text, normalizer_.get(), pieces));
  if (pre_tokenizer_ != nullptr) RETURN_IF_ERROR(pre_tokenizer_->PreTokenize(pieces));
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const tokenizer::Piece& p : pieces) {
    if (p.token_id >= 0) {
      ids.push_back(p.token_id);
    } else {
      model_->Tokenize(p.text, ids);
    }
  }
  if (add_special_tokens && post_processor_ != nullptr) post_processor_->Process(ids);
  return ids;
}

const std::string* Tokenizer::TokenString(TokenId id) const {
  if (const AddedToken* a = added_.FindById(id)) return &a->content;
  return model_->IdToToken(id);
}

std::string Tokenizer::Decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) {
    const std::string* s = TokenString(id);
    if (s == nullptr) continue;
    if (skip_special_tokens) {
      const AddedToken* a = added_.FindByContent(*s);
      if (a != nullptr && a->special) continue;
    }
    tokens.push_back(*s);
  }
  if (decoder_ == nullptr) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  decoder_->DecodeChain(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

std::optional<TokenId> Tokenizer::TokenToId(std::string_view token) const {
  if (const AddedToken* a = added_.FindByContent(token)) return a->id;
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(TokenId id) const {
  const std::string* s = TokenString(id);
  if (s == nullptr) return std::nullopt;
  return *s;
}

bool Tokenizer::IsSpecial(TokenId id) const {
  const AddedToken* a = added_.FindById(id);
  return a != nullptr && a->special;
}

std::vector<TokenId> Tokenizer::SpecialIds() const {
  std::vector<TokenId> ids;
  for (const AddedToken& a : added_.tokens()) {
    if (a.special) ids.push_back(a.id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace tandem
