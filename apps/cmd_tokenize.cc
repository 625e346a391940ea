// `tandem tokenize` and `tandem detokenize`: the tokenizer of a model folder (or a folder with only
// tokenizer.json / tokenizer_config.json) from the command line.
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/command.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  std::string file;
  bool no_special_tokens = false;
};

int RunTokenize(const TokenizeOptions& o) {
  std::string text = o.text;
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) return ReportError(NotFoundError("cannot open " + o.file));
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto tok = Tokenizer::FromModelDir(o.model);
  if (!tok.ok()) return ReportError(tok.status());
  auto ids = (*tok)->Encode(text, !o.no_special_tokens);
  if (!ids.ok()) return ReportError(ids.status());
  std::string line;
  for (size_t i = 0; i < ids->size(); ++i) {
    if (i > 0) line.push_back(' ');
    line += std::to_string((*ids)[i]);
  }
  std::cout << line << "\n";
  return 0;
}

std::pair<CLI::App*, CommandRunner> SetupTokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of a text, space-separated");
  auto o = std::make_shared<TokenizeOptions>();
  sub->add_option("--model", o->model, "Model folder with tokenizer.json")->required();
  auto* text = sub->add_option("--text", o->text, "Text to tokenize");
  auto* file = sub->add_option("--file", o->file, "File whose bytes to tokenize");
  text->excludes(file);
  sub->add_flag("--no-special-tokens", o->no_special_tokens,
                "Do not add the post-processor's special tokens (e.g. BOS)");
  return {sub, [o, text, file] {
            if (text->count() == 0 && file->count() == 0) {
              return ReportError(InvalidArgumentError("one of --text or --file is required"));
            }
            return RunTokenize(*o);
          }};
}

struct DetokenizeOptions {
  std::string model;
  std::string ids;
  bool skip_special_tokens = false;
};

Result<std::vector<TokenId>> ParseIds(const std::string& list) {
  std::vector<TokenId> ids;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    item = item.substr(first, item.find_last_not_of(" \t") - first + 1);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) {
      return InvalidArgumentError("--ids: '" + item + "' is not a token id");
    }
    ids.push_back(static_cast<TokenId>(v));
  }
  return ids;
}

int RunDetokenize(const DetokenizeOptions& o) {
  auto ids = ParseIds(o.ids);
  if (!ids.ok()) return ReportError(ids.status());
  auto tok = Tokenizer::FromModelDir(o.model);
  if (!tok.ok()) return ReportError(tok.status());
  for (TokenId id : *ids) {
    if (static_cast<size_t>(id) >= (*tok)->IdLimit()) {
      return ReportError(OutOfRangeError("--ids: " + std::to_string(id) + " is not below the vocab size " +
                                         std::to_string((*tok)->IdLimit())));
    }
  }
  std::cout << (*tok)->Decode(*ids, o.skip_special_tokens) << "\n";
  return 0;
}

std::pair<CLI::App*, CommandRunner> SetupDetokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  auto o = std::make_shared<DetokenizeOptions>();
  sub->add_option("--model", o->model, "Model folder with tokenizer.json")->required();
  sub->add_option("--ids", o->ids, "Token ids, e.g. 1,2,3")->required();
  sub->add_flag("--skip-special-tokens", o->skip_special_tokens, "Drop special tokens");
  return {sub, [o] { return RunDetokenize(*o); }};
}

TANDEM_REGISTER_COMMAND(SetupTokenize);
TANDEM_REGISTER_COMMAND(SetupDetokenize);

}  // namespace
}  // namespace tandem
