// The multi-turn chat workload (--dataset-name multi-turn), for prefix caching: conversations of
// --multi-turn-turns turns, each message --random-input-len tokens of random ordinary text (and
// --random-range-ratio), each answer --random-output-len tokens, every conversation opening with
// the same --multi-turn-system-len-token system prompt. A later turn's prompt is the whole
// conversation so far, as a chat client resends it: on /v1/chat/completions the messages
// (system, user, assistant, user, ...), on /v1/completions their texts joined. It is sent when
// the previous turn's answer is in (plus --multi-turn-think-s), so only first turns follow the
// arrival schedule: --request-rate counts new conversations per second.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "loadgen/workload.h"

namespace tandem::loadgen {

// --num-prompts requests in all (the last conversation may be shorter), conversation by
// conversation. Needs a tokenizer (the messages are text).
Result<Workload> GenerateMultiTurn(const WorkloadOptions& options);

// One turn as it is sent: the prompt text for /v1/completions and the messages for chat.
struct ComposedTurn {
  std::string prompt_text;
  std::vector<std::pair<std::string, std::string>> messages;  // (role, content)
};

// Turn `request` given the turn before it as sent (`previous`, null for a first turn) and that
// turn's answer.
ComposedTurn ComposeTurn(const BenchRequest& request, const ComposedTurn* previous, const std::string& answer);

}  // namespace tandem::loadgen
