// libFuzzer target: arbitrary bytes as the body of POST /v1/completions and POST
// /v1/chat/completions, through what the server does before the request reaches the router:
// JSON parse (ordered_json, as HttpSession), ParseGenerationRequest, ResolveMaxTokens, then the
// router's own ValidateRequest on the resulting sampling parameters. Every input is tried as both
// kinds. Nothing may crash; an error must be a 400 that names something; and whatever is
// accepted must satisfy the invariants the engine relies on (checked here, abort() otherwise),
// so that the frontend never accepts a request the router or the sampler would then refuse.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/request_rules.h"
#include "frontend/openai_protocol.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nlohmann::ordered_json;
using tandem::ApiError;
using tandem::ApiKind;
using tandem::GenerationRequest;

// A small model's limits; ids and context lengths in the inputs are judged against these.
constexpr int64_t kVocabSize = 32000;
constexpr int64_t kMaxModelLen = 4096;

void CheckError(const ApiError& e) {
  FUZZ_CHECK(e.http_status == 400);
  FUZZ_CHECK(!e.message.empty());
  FUZZ_CHECK(!e.type.empty());
  // The body the client gets must always serialize (DumpJson never throws).
  FUZZ_CHECK(!tandem::DumpJson(e.ToJson()).empty());
}

bool InRange(float x, float lo, float hi) { return std::isfinite(x) && x >= lo && x <= hi; }

void CheckAccepted(const GenerationRequest& r, ApiKind kind) {
  FUZZ_CHECK(r.kind == kind);
  const tandem::SamplingParams& p = r.params;
  FUZZ_CHECK(InRange(p.temperature, 0.0f, 2.0f));
  FUZZ_CHECK(p.top_p > 0.0f && p.top_p <= 1.0f);
  FUZZ_CHECK(InRange(p.min_p, 0.0f, 1.0f));
  FUZZ_CHECK(InRange(p.presence_penalty, -2.0f, 2.0f));
  FUZZ_CHECK(InRange(p.frequency_penalty, -2.0f, 2.0f));
  FUZZ_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0.0f);
  FUZZ_CHECK(p.top_k >= -1);
  for (int32_t t : p.stop_token_ids) FUZZ_CHECK(t >= 0 && t < kVocabSize);
  if (r.max_tokens) FUZZ_CHECK(*r.max_tokens >= 1);
  FUZZ_CHECK(r.stop.size() <= tandem::kMaxStopStrings);
  for (const std::string& s : r.stop) FUZZ_CHECK(!s.empty());
  FUZZ_CHECK(!r.include_usage || r.stream);
  FUZZ_CHECK(r.slo_ttft_ms >= 0 && r.slo_tpot_ms >= 0);
  if (kind == ApiKind::kCompletion) {
    FUZZ_CHECK(r.has_prompt_text != !r.prompt_ids.empty());
    for (int32_t t : r.prompt_ids) FUZZ_CHECK(t >= 0 && t < kVocabSize);
  } else {
    FUZZ_CHECK(r.messages.is_array() && !r.messages.empty());
    for (const ordered_json& m : r.messages) {
      FUZZ_CHECK(m.is_object());
      FUZZ_CHECK(m.contains("role") && m["role"].is_string() && !m["role"].get<std::string>().empty());
      if (m.contains("content")) FUZZ_CHECK(m["content"].is_string() || m["content"].is_null());
    }
  }
}

// The prompt the server would run: the ids as given, or a stand-in for the tokenized text (one
// token per byte, at least one; the real count comes from the tokenizer).
std::vector<int32_t> StandInPrompt(const GenerationRequest& r) {
  if (!r.prompt_ids.empty()) return r.prompt_ids;
  size_t n = r.prompt_text.size();
  if (r.kind == ApiKind::kChat) n = r.messages.dump().size();
  n = std::max<size_t>(1, std::min<size_t>(n, 2 * kMaxModelLen));
  return std::vector<int32_t>(n, 1);
}

void TryKind(const ordered_json& body, ApiKind kind) {
  const tandem::ProtocolLimits limits{kVocabSize, kMaxModelLen};
  GenerationRequest r;
  if (auto e = tandem::ParseGenerationRequest(body, kind, limits, &r)) {
    CheckError(*e);
    return;
  }
  CheckAccepted(r, kind);
  const std::vector<int32_t> prompt = StandInPrompt(r);
  int32_t max_tokens = 0;
  if (auto e = tandem::ResolveMaxTokens(r, prompt.size(), kMaxModelLen, &max_tokens)) {
    CheckError(*e);
    return;
  }
  FUZZ_CHECK(max_tokens >= 1);
  FUZZ_CHECK(static_cast<int64_t>(prompt.size()) + max_tokens <= kMaxModelLen);
  if (r.max_tokens) FUZZ_CHECK(max_tokens == *r.max_tokens);
  // What PrepareGeneration hands to the InferenceClient, which the router validates again.
  tandem::SamplingParams params = r.params;
  params.max_tokens = max_tokens;
  tandem::RequestLimits rules;
  rules.vocab_size = kVocabSize;
  rules.context_window = kMaxModelLen;
  const tandem::Status st = tandem::ValidateRequest(prompt, params, rules);
  FUZZ_CHECK(st.ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ordered_json body;
  try {
    body = ordered_json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;  // 400 invalid_json
  }
  if (!body.is_object()) return 0;  // 400: the session checks this before parsing the fields
  TryKind(body, ApiKind::kCompletion);
  TryKind(body, ApiKind::kChat);
  return 0;
}
