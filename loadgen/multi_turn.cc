#include "loadgen/multi_turn.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace tandem::loadgen {

namespace {
constexpr const char* kTurnSeparator = "\n\n";
}  // namespace

Result<Workload> GenerateMultiTurn(const WorkloadOptions& o) {
  if (o.tokenizer == nullptr) {
    return InvalidArgumentError("--dataset-name multi-turn needs --tokenizer (a model folder): its messages are text");
  }
  if (o.multi_turn_turns < 1) return InvalidArgumentError("--multi-turn-turns must be at least 1");
  if (o.multi_turn_system_len < 0) return InvalidArgumentError("--multi-turn-system-len must be >= 0");
  if (o.random_input_len < 1 || o.random_output_len < 1) {
    return InvalidArgumentError("--random-input-len and --random-output-len must be at least 1");
  }
  if (!(o.random_range_ratio >= 0 && o.random_range_ratio < 1)) {
    return InvalidArgumentError("--random-range-ratio must be in [0, 1)");
  }
  std::mt19937_64 rng(o.seed ^ 0x7a1cULL);
  auto draw = [&](int32_t len) {
    const auto lo = std::max<int64_t>(1, static_cast<int64_t>(std::floor(len * (1 - o.random_range_ratio))));
    const auto hi = std::max<int64_t>(lo, static_cast<int64_t>(std::ceil(len * (1 + o.random_range_ratio))));
    return static_cast<int32_t>(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
  };
  PromptMaker maker(o.tokenizer, o.seed ^ 0xc0417ULL);
  auto text = [&](int32_t len) { return o.tokenizer->Decode(maker.Random(len), /*skip_special_tokens=*/true); };
  const std::string system = o.multi_turn_system_len > 0 ? text(o.multi_turn_system_len) : std::string();
  Workload w;
  while (static_cast<int64_t>(w.requests.size()) < o.num_prompts) {
    int64_t previous = -1;
    for (int32_t t = 0; t < o.multi_turn_turns && static_cast<int64_t>(w.requests.size()) < o.num_prompts; ++t) {
      BenchRequest r;
      r.prompt_text = text(draw(o.random_input_len));
      r.output_len = draw(o.random_output_len);
      r.prompt_len = 0;  // the whole conversation is sent: the server's usage counts it
      r.previous_turn = previous;
      r.turn = t;
      if (t == 0) r.system_text = system;
      previous = static_cast<int64_t>(w.requests.size());
      w.requests.push_back(std::move(r));
    }
  }
  return w;
}

ComposedTurn ComposeTurn(const BenchRequest& request, const ComposedTurn* previous, const std::string& answer) {
  ComposedTurn c;
  if (previous == nullptr) {
    c.prompt_text =
        request.system_text.empty() ? request.prompt_text : request.system_text + kTurnSeparator + request.prompt_text;
    if (!request.system_text.empty()) c.messages.emplace_back("system", request.system_text);
    c.messages.emplace_back("user", request.prompt_text);
    return c;
  }
  c.prompt_text = previous->prompt_text + answer + kTurnSeparator + request.prompt_text;
  c.messages = previous->messages;
  c.messages.emplace_back("assistant", answer);
  c.messages.emplace_back("user", request.prompt_text);
  return c;
}

}  // namespace tandem::loadgen
