#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/unicode_util.h"

namespace tandem::tokenizer {
namespace {

std::string Pcre2Message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof(buf)) < 0) return "error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buf));
}

// One JIT stack and match context per thread: matching is re-entrant and lock-free.
struct ThreadMatchState {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  ThreadMatchState() {
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (context != nullptr && stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    if (stack != nullptr) pcre2_jit_stack_free(stack);
    if (context != nullptr) pcre2_match_context_free(context);
  }
};

ThreadMatchState& MatchState() {
  thread_local ThreadMatchState state;
  return state;
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool is_literal = false;
  std::string literal;
  ~Impl() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::string TranslateOnigPattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 8);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 'h') {
        out += class_depth > 0 ? "0-9a-fA-F" : "[0-9a-fA-F]";
      } else if (n == 'H') {
        out += class_depth > 0 ? "\\x00-/:-@G-`g-\\x{10FFFF}" : "[^0-9a-fA-F]";
      } else {
        out.push_back(c);
        out.push_back(n);
      }
      ++i;
      continue;
    }
    if (class_depth > 0) {
      if (c == '[') ++class_depth;
      if (c == ']') --class_depth;
      out.push_back(c);
      continue;
    }
    if (c == '[') {
      ++class_depth;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
      if (i + 1 < p.size() && p[i + 1] == ']') out.push_back(p[++i]);
      continue;
    }
    if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
      // Inline flags "(?imx-imx)" or "(?imx-imx:": Ruby's m is PCRE2's s.
      size_t j = i + 2;
      while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) ++j;
      if (j > i + 2 && j < p.size() && (p[j] == ')' || p[j] == ':')) {
        out += "(?";
        for (size_t k = i + 2; k < j; ++k) out.push_back(p[k] == 'm' ? 's' : p[k]);
        i = j - 1;
        continue;
      }
    }
    out.push_back(c);
  }
  return out;
}

std::string EscapeRegex(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-#&~ \t\n\r").find(c) != std::string_view::npos) {
      if (c == '\t') { out += "\\t"; continue; }
      if (c == '\n') { out += "\\n"; continue; }
      if (c == '\r') { out += "\\r"; continue; }
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

Result<Regex> Regex::Compile(std::string_view pattern) {
  const std::string translated = TranslateOnigPattern(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(), PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE,
                                   &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return InvalidArgumentError("invalid regex '" + std::string(pattern) +
                                "': " + Pcre2Message(error_code) + " at offset " +
                                std::to_string(error_offset));
  }
  // JIT is an optimisation: without it (e.g. unsupported platform) the interpreter is used.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  Regex re;
  re.impl_ = std::make_unique<Impl>();
  re.impl_->code = code;
  re.pattern_ = std::string(pattern);
  return re;
}

Result<Regex> Regex::Literal(std::string_view literal) {
  if (literal.empty()) return Compile("");
  Regex re;
  re.impl_ = std::make_unique<Impl>();
  re.impl_->is_literal = true;
  re.impl_->literal = std::string(literal);
  re.pattern_ = EscapeRegex(literal);
  return re;
}

Status Regex::FindAll(std::string_view subject, std::vector<MatchSpan>& out) const {
  if (impl_->is_literal) {
    const std::string& lit = impl_->literal;
    size_t pos = 0;
    while ((pos = subject.find(lit, pos)) != std::string_view::npos) {
      out.push_back({pos, pos + lit.size()});
      pos += lit.size();
    }
    return Status::Ok();
  }
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (md == nullptr) return ResourceExhaustedError("pcre2_match_data_create failed");
  ThreadMatchState& state = MatchState();
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t search_from = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  Status status;
  while (search_from <= subject.size()) {
    const int rc = pcre2_match(impl_->code, data, subject.size(), search_from, PCRE2_NO_UTF_CHECK,
                               md, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      status = ResourceExhaustedError("regex '" + pattern_ + "' failed: " + Pcre2Message(rc));
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_match_end == e) {
      // rust-onig: no empty match immediately after the previous match; step one character.
      search_from += search_from < subject.size()
                         ? Utf8SeqLen(static_cast<unsigned char>(subject[search_from]))
                         : 1;
      continue;
    }
    out.push_back({s, e});
    search_from = e;
    have_last = true;
    last_match_end = e;
  }
  pcre2_match_data_free(md);
  return status;
}

}  // namespace tandem::tokenizer
