// Chat templates against transformers' apply_chat_template: every fixture rendering must be
// byte-identical, and every construct outside the subset must fail with its position.
// Fixtures: tools/gen_chat_template_fixtures.py -> tests/data/chat_templates/*.json.
#include "tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tandem {
namespace {

using ::testing::HasSubstr;
using ordered_json = nlohmann::ordered_json;

const std::filesystem::path kDataDir = std::filesystem::path(TANDEM_TEST_DATA_DIR) / "chat_templates";
const std::filesystem::path kSharedDir = TANDEM_SHARED_DIR;

std::string ReadText(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Renders every case of tests/data/chat_templates/<name>.json and compares with the reference.
void RunFixture(const std::string& name) {
  const auto path = kDataDir / (name + ".json");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent: run tools/gen_chat_template_fixtures.py";
  ordered_json doc = ordered_json::parse(ReadText(path));
  std::string source;
  if (doc.contains("template")) {
    source = doc["template"].get<std::string>();
  } else {
    const auto tmpl_path = kSharedDir / doc["template_path"].get<std::string>();
    if (!std::filesystem::exists(tmpl_path)) GTEST_SKIP() << tmpl_path << " absent (TANDEM_SHARED_DIR data not available)";
    source = ordered_json::parse(ReadText(tmpl_path))["chat_template"].get<std::string>();
  }
  Result<ChatTemplate> tmpl = ChatTemplate::Parse(source);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
  ASSERT_FALSE(doc["cases"].empty());
  for (const auto& c : doc["cases"]) {
    SCOPED_TRACE(name + "/" + c["name"].get<std::string>());
    Result<std::string> out = tmpl->Render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(), c["extra"]);
    if (c.contains("expected")) {
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    } else {
      ASSERT_FALSE(out.ok()) << "reference failed with " << c["error"] << " but we rendered:\n" << *out;
      if (c["error_type"] == "TemplateError") {  // raise_exception: the message must come through
        EXPECT_THAT(out.status().message(), HasSubstr("raise_exception"));
        EXPECT_THAT(out.status().message(), HasSubstr(c["error"].get<std::string>()));
      }
    }
  }
}

TEST(ChatTemplateFixtures, Qwen3) { RunFixture("qwen3"); }
TEST(ChatTemplateFixtures, ChatML) { RunFixture("chatml"); }
TEST(ChatTemplateFixtures, Llama2) { RunFixture("llama2"); }
TEST(ChatTemplateFixtures, Llama3) { RunFixture("llama3"); }
TEST(ChatTemplateFixtures, Mistral) { RunFixture("mistral"); }
TEST(ChatTemplateFixtures, Gemma) { RunFixture("gemma"); }
TEST(ChatTemplateFixtures, Zephyr) { RunFixture("zephyr"); }
TEST(ChatTemplateFixtures, DeepSeek) { RunFixture("deepseek"); }
TEST(ChatTemplateFixtures, Features) { RunFixture("features"); }
TEST(ChatTemplateFixtures, TandemBuiltin) { RunFixture("tandem_builtin"); }

// The committed fixtures embed the self-written templates; they must match the .jinja files.
TEST(ChatTemplateFixtures, EmbeddedTemplatesMatchFiles) {
  for (const char* name : {"chatml", "llama2", "llama3", "mistral", "gemma", "zephyr", "deepseek", "features"}) {
    ordered_json doc = ordered_json::parse(ReadText(kDataDir / (std::string(name) + ".json")));
    EXPECT_EQ(doc["template"].get<std::string>(), ReadText(kDataDir / "templates" / (std::string(name) + ".jinja")))
        << name << ": regenerate with tools/gen_chat_template_fixtures.py";
  }
}

Status ParseError(const std::string& source) {
  Result<ChatTemplate> t = ChatTemplate::Parse(source);
  return t.ok() ? Status::Ok() : t.status();
}

Status RenderError(const std::string& source, const ordered_json& extra = ordered_json::object()) {
  Result<ChatTemplate> t = ChatTemplate::Parse(source);
  if (!t.ok()) return InternalError("unexpected parse error: " + t.status().ToString());
  Result<std::string> out = t->Render(ordered_json::array(), nullptr, false, extra);
  return out.ok() ? Status::Ok() : out.status();
}

TEST(ChatTemplateErrors, UnknownFilterNamesItAndItsPosition) {
  Status s = ParseError("line one\n  {{ messages | frobnicate }}");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("filter 'frobnicate'"));
  EXPECT_THAT(s.message(), HasSubstr("line 2, column 17"));
}

TEST(ChatTemplateErrors, UnknownTest) {
  Status s = ParseError("{% if x is frob %}{% endif %}");
  EXPECT_THAT(s.message(), HasSubstr("test 'frob'"));
  EXPECT_THAT(s.message(), HasSubstr("line 1, column 12"));
}

TEST(ChatTemplateErrors, UnclosedBlockPointsAtTheOpener) {
  Status s = ParseError("a\n{% for m in messages %}\n{% if m %}x{% endif %}");
  EXPECT_THAT(s.message(), HasSubstr("unclosed 'for' block"));
  EXPECT_THAT(s.message(), HasSubstr("'endfor'"));
  EXPECT_THAT(s.message(), HasSubstr("line 2, column 4"));
  EXPECT_THAT(ParseError("{% if true %}{% else %}").message(), HasSubstr("unclosed 'else' block"));
}

TEST(ChatTemplateErrors, UnsupportedTags) {
  for (const char* tag : {"include 'x'", "extends 'base'", "import 'm' as m", "block body", "call m()"}) {
    Status s = ParseError(std::string("ok\n {% ") + tag + " %}");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << tag;
    EXPECT_THAT(s.message(), HasSubstr("unsupported tag")) << tag;
    EXPECT_THAT(s.message(), HasSubstr("line 2, column 5")) << tag;
  }
  EXPECT_THAT(ParseError("{% frobnicate %}").message(), HasSubstr("unexpected tag 'frobnicate'"));
  EXPECT_THAT(ParseError("{% if x %}{% endfor %}").message(), HasSubstr("innermost open block is 'if'"));
}

TEST(ChatTemplateErrors, BadSyntaxHasLineAndColumn) {
  Status s = ParseError("{{ 'a' }}\n\n   {{ 1 + }}");
  EXPECT_THAT(s.message(), HasSubstr("syntax error at line 3, column 11"));
  EXPECT_THAT(ParseError("{{ (1, 2 }}").message(), HasSubstr("line 1, column 10"));
  EXPECT_THAT(ParseError("x\n{{ 'never closed").message(), HasSubstr("line 2, column 4: unterminated string literal"));
  EXPECT_THAT(ParseError("{# open comment").message(), HasSubstr("comment"));
  EXPECT_THAT(ParseError("{{ x ").message(), HasSubstr("unclosed '{{'"));
  EXPECT_THAT(ParseError("{% break %}").message(), HasSubstr("outside of a for loop"));
  EXPECT_THAT(ParseError("{{ f(*args) }}").message(), HasSubstr("*args"));
}

TEST(ChatTemplateErrors, RaiseExceptionPropagatesItsMessage) {
  Status s = RenderError("{% if true %}\n  {{ raise_exception('Roles must alternate: ' ~ 3) }}\n{% endif %}");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("raise_exception at line 2"));
  EXPECT_THAT(s.message(), HasSubstr("Roles must alternate: 3"));
}

TEST(ChatTemplateErrors, RuntimeErrorsNameTheProblemAndPosition) {
  Status s = RenderError("{{ 'a' }}\n{{ x.y }}");
  EXPECT_THAT(s.message(), HasSubstr("'x' is undefined"));
  EXPECT_THAT(s.message(), HasSubstr("line 2"));
  EXPECT_THAT(RenderError("{{ 1 + 'a' }}").message(), HasSubstr("unsupported operand"));
  EXPECT_THAT(RenderError("{{ 'abc'.zfill(5) }}").message(), HasSubstr("unsupported string method 'zfill'"));
  EXPECT_THAT(RenderError("{{ undefined_var | tojson }}").message(), HasSubstr("not JSON serializable"));
  EXPECT_THAT(RenderError("{{ '%s' % 1 }}").message(), HasSubstr("not supported"));
  EXPECT_THAT(RenderError("{% set ns = namespace() %}{% set ns._x = 1 %}").message(), HasSubstr("'_'"));
}

TEST(ChatTemplateRender, InputsAreNormalizedLikeApplyChatTemplate) {
  Result<ChatTemplate> t = ChatTemplate::Parse(
      "{% for m in messages %}{{ m.content is defined }},{{ m.thinking }},{{ m.reasoning_content }};{% endfor %}"
      "{{ tools is none }} {{ documents is none }} {{ add_generation_prompt }} {{ bos_token }}");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ordered_json messages = ordered_json::parse(
      R"([{"role": "user", "content": null}, {"role": "assistant", "content": "a", "reasoning": "r"}])");
  Result<std::string> out = t->Render(messages, nullptr, true, {{"bos_token", "<s>"}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, "False,,;True,r,r;True True True <s>");
}

TEST(ChatTemplateRender, KeyOrderIsPreservedThroughTojson) {
  Result<ChatTemplate> t = ChatTemplate::Parse("{{ tools[0] | tojson }}");
  ASSERT_TRUE(t.ok());
  Result<std::string> out =
      t->Render(ordered_json::array(), ordered_json::parse(R"([{"z": 1, "a": {"y": 2, "b": "é\n"}}])"), false, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, R"({"z": 1, "a": {"y": 2, "b": "é\n"}})");
}

TEST(ChatTemplateRender, RejectsMalformedInputs) {
  Result<ChatTemplate> t = ChatTemplate::Parse("x");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->Render(ordered_json::object(), nullptr, false, nullptr).ok());
  EXPECT_FALSE(t->Render(ordered_json::array({1}), nullptr, false, nullptr).ok());
  EXPECT_FALSE(t->Render(ordered_json::array(), "tools", false, nullptr).ok());
  EXPECT_FALSE(t->Render(ordered_json::array(), nullptr, false, {{"messages", 1}}).ok());
  ordered_json deep = "leaf";
  for (int i = 0; i < 1000; ++i) deep = ordered_json::array({deep});
  Result<std::string> nested = t->Render(ordered_json::array({{{"role", "user"}, {"content", deep}}}), nullptr, false, nullptr);
  ASSERT_FALSE(nested.ok());
  EXPECT_THAT(nested.status().message(), HasSubstr("nested deeper"));
}

TEST(ChatTemplateRender, StrftimeNowFormatsTheCurrentDate) {
  Result<ChatTemplate> t = ChatTemplate::Parse("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %b %Y') | length }}");
  ASSERT_TRUE(t.ok());
  Result<std::string> out = t->Render(ordered_json::array(), nullptr, false, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  char expected[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(expected, sizeof(expected), "%Y-%m-%d", &tm);
  EXPECT_EQ(*out, std::string(expected) + "|11");
}

class LoadChatTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tandem_chat_template_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& file, const std::string& text) { std::ofstream(dir_ / file, std::ios::binary) << text; }
  std::filesystem::path dir_;
};

TEST_F(LoadChatTemplateTest, StringTemplateAndTokenObjects) {
  Write("tokenizer_config.json",
        R"({"chat_template": "{{ bos_token }}hi", "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>", "pad_token": null})");
  Result<ChatTemplateSource> src = LoadChatTemplate(dir_.string());
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ(src->source, "{{ bos_token }}hi");
  EXPECT_EQ(src->bos_token, "<s>");
  EXPECT_EQ(src->eos_token, "</s>");
  EXPECT_EQ(src->special_tokens.dump(), R"({"bos_token":"<s>","eos_token":"</s>"})");
}

TEST_F(LoadChatTemplateTest, NamedTemplateList) {
  Write("tokenizer_config.json",
        R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(LoadChatTemplate(dir_.string())->source, "D");
  EXPECT_EQ(LoadChatTemplate(dir_.string(), "tool_use")->source, "T");
  Result<ChatTemplateSource> missing = LoadChatTemplate(dir_.string(), "rag");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("default, tool_use"));
}

TEST_F(LoadChatTemplateTest, JinjaFileWins) {
  Write("tokenizer_config.json", R"({"chat_template": "from config", "eos_token": "E"})");
  Write("chat_template.jinja", "from file\n");
  Result<ChatTemplateSource> src = LoadChatTemplate(dir_.string());
  ASSERT_TRUE(src.ok());
  EXPECT_EQ(src->source, "from file\n");
  EXPECT_EQ(src->eos_token, "E");
}

TEST_F(LoadChatTemplateTest, MissingTemplateIsNotFound) {
  Write("tokenizer_config.json", R"({"eos_token": "E"})");
  EXPECT_EQ(LoadChatTemplate(dir_.string()).status().code(), StatusCode::kNotFound);
  Write("tokenizer_config.json", "{not json");
  EXPECT_EQ(LoadChatTemplate(dir_.string()).status().code(), StatusCode::kInvalidArgument);
}

TEST(LoadChatTemplate, SharedQwen3) {
  const auto dir = kSharedDir / "data" / "tokenizers" / "qwen3";
  if (!std::filesystem::exists(dir / "tokenizer_config.json")) GTEST_SKIP() << dir << " absent";
  Result<ChatTemplateSource> src = LoadChatTemplate(dir.string());
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ(src->eos_token, "<|im_end|>");
  EXPECT_EQ(src->bos_token, "");
  EXPECT_THAT(src->source, HasSubstr("<|im_start|>"));
  EXPECT_TRUE(ChatTemplate::Parse(src->source).ok());
}

}  // namespace
}  // namespace tandem
