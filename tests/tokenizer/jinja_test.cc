// Jinja semantics against jinja2 in transformers' environment: each case of
// tests/data/chat_templates/jinja_cases.json (tools/gen_chat_template_fixtures.py) must render
// byte-identically, or fail where the reference fails.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tokenizer/jinja_interpreter.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/jinja_string.h"
#include "tokenizer/jinja_value.h"

namespace tandem::jinja {
namespace {

using ordered_json = nlohmann::ordered_json;

TEST(JinjaCases, MatchJinja2) {
  const auto path = std::filesystem::path(TANDEM_TEST_DATA_DIR) / "chat_templates" / "jinja_cases.json";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path << " absent: run tools/gen_chat_template_fixtures.py";
  std::ostringstream ss;
  ss << in.rdbuf();
  ordered_json cases = ordered_json::parse(ss.str());
  ASSERT_GT(cases.size(), 50u);
  for (const auto& c : cases) {
    const std::string tmpl = c["template"].get<std::string>();
    SCOPED_TRACE("template: " + tmpl);
    DictData vars = FromJson(c["vars"]).dict();
    std::string out;
    std::string error;
    int error_line = 0;
    try {
      out = RenderTemplate(ParseTemplate(tmpl), vars);
    } catch (const JinjaError& e) {
      error = e.message;
      error_line = e.line;
    }
    if (c.value("unsupported", false)) {
      // Outside the subset on purpose: must be refused with a positioned error, not rendered.
      EXPECT_NE(error, "") << "rendered '" << out << "' for a construct marked unsupported";
      EXPECT_GT(error_line, 0);
    } else if (c.contains("expected")) {
      EXPECT_EQ(error, "");
      EXPECT_EQ(out, c["expected"].get<std::string>());
    } else {
      EXPECT_NE(error, "") << "reference failed with " << c["error_type"] << ": " << c["error"] << "; we rendered '"
                           << out << "'";
      EXPECT_GT(error_line, 0) << "error without a position: " << error;
      if (c["error_type"] == "TemplateError") {
        EXPECT_EQ(error, c["error"].get<std::string>());
      }
    }
  }
}

TEST(JinjaValue, FloatReprMatchesPython) {
  EXPECT_EQ(FloatRepr(1.0), "1.0");
  EXPECT_EQ(FloatRepr(0.1), "0.1");
  EXPECT_EQ(FloatRepr(1e16), "1e+16");
  EXPECT_EQ(FloatRepr(1e15), "1000000000000000.0");
  EXPECT_EQ(FloatRepr(1.5e-5), "1.5e-05");
  EXPECT_EQ(FloatRepr(0.0001), "0.0001");
  EXPECT_EQ(FloatRepr(-2.5), "-2.5");
  EXPECT_EQ(FloatRepr(123456.789), "123456.789");
  EXPECT_EQ(FloatRepr(1.7976931348623157e308), "1.7976931348623157e+308");
}

TEST(JinjaString, PythonStringSemantics) {
  EXPECT_EQ(PyStrip("\u3000 x\u00a0\n", std::nullopt, true, true), "x");
  EXPECT_EQ(PySplit("  a  b ", std::nullopt, 1, false), (std::vector<std::string>{"a", "b "}));
  EXPECT_EQ(PySplit("a,,b", std::string(","), -1, false), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(PyStrRepr("it's"), "\"it's\"");
  EXPECT_EQ(PyStrRepr("a\x01\u00e9"), "'a\\x01\u00e9'");
  EXPECT_EQ(PyTitle("hello wORLD 3rd"), "Hello World 3Rd");
  EXPECT_EQ(JinjaTitle("hello wORLD 3rd"), "Hello World 3rd");
  EXPECT_EQ(PyReplace("aaa", "a", "b", 2), "bba");
}

}  // namespace
}  // namespace tandem::jinja
