// One request's record from arrival to finish: every timestamp, where it ran, how it ended.
// It is the single source of TTFT, TPOT and end-to-end latency: the router core (cluster and
// colocated worker alike) keeps one per request, stamps what it sees on its own clock, folds
// in what the nodes report (converted to its clock at the edge), and logs it once at the end.
// The engine core keeps one per sequence on the node that runs it, with the node-side stamps.
//
// Stamps are steady-clock microseconds of the process that keeps the record (common/clock.h);
// 0 means "did not happen". Phases, in order (a colocated request has no transfer):
//
//   arrival -> queued -> placed -> prefill_start -> prefill_end -> transfer_start -> transfer_end
//      -> decode_admitted;  first_token (client-visible) ... token_us[i] ... finish
//
// TTFT = first_token - arrival; TPOT = (last token - first token) / (tokens - 1), as vLLM's
// `bench serve` and DistServe define them; e2e = finish - arrival.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "slo/slo_config.h"

namespace tandem {

enum class FinishReason { kNone, kStop, kLength, kAbort, kError };
std::string_view FinishReasonName(FinishReason r);  // OpenAI spelling: "stop", "length", ...

struct RequestRecord {
  int64_t id = 0;
  std::string prefill_node;  // node ids ("" until placed); a colocated worker names itself twice
  std::string decode_node;
  int32_t prompt_tokens = 0;
  int32_t output_tokens = 0;
  int32_t max_tokens = 0;       // what it asked for (resolved against the context window)
  int32_t decode_attempts = 0;  // decode nodes tried (a refused reservation moves to the next)
  int32_t preemptions = 0;      // times its KV blocks were taken back (and recomputed) while it ran
  int32_t cached_tokens = 0;    // prompt tokens whose K/V came from the prefix cache (not computed)

  int64_t arrival_us = 0;          // the router received it
  int64_t queued_us = 0;           // entered the queue it waited in (router or engine)
  int64_t placed_us = 0;           // sent to its prefill node (or handed to the engine)
  int64_t prefill_start_us = 0;    // its first prompt chunk was scheduled
  int64_t prefill_end_us = 0;      // its prompt was complete and the first token sampled
  int64_t transfer_start_us = 0;   // first KV write posted
  int64_t transfer_end_us = 0;     // every KV byte visible on the decode node
  int64_t kv_bytes = -1;           // -1: unknown (no transfer, or not reported)
  int64_t decode_admitted_us = 0;  // joined the decode node's batch
  int64_t first_token_us = 0;      // the first token was seen by whoever keeps the record
  std::vector<int64_t> token_us;   // one per output token, the first included (unless not kept)
  int64_t last_token_us = 0;
  int64_t finish_us = 0;

  FinishReason finish_reason = FinishReason::kNone;
  Status status;   // why it failed (kError); Ok otherwise
  RequestSlo slo;  // the targets it is held to (empty: none)

  bool finished() const { return finish_reason != FinishReason::kNone; }
  // -1 when there was no first token.
  double ttft_ms() const { return first_token_us ? (first_token_us - arrival_us) / 1000.0 : -1.0; }
  // Mean time per output token after the first; 0 with fewer than two tokens.
  double tpot_ms() const {
    return output_tokens < 2 ? 0.0 : (last_token_us - first_token_us) / 1000.0 / (output_tokens - 1);
  }
  double e2e_ms() const { return finish_us ? (finish_us - arrival_us) / 1000.0 : -1.0; }
  double queue_ms() const { return placed_us && queued_us ? (placed_us - queued_us) / 1000.0 : 0.0; }
  // Transfer time, or -1 when there was none.
  double transfer_ms() const {
    return transfer_end_us && transfer_start_us ? (transfer_end_us - transfer_start_us) / 1000.0 : -1.0;
  }

  // Stamps a token: the first one also sets first_token_us. Without `keep_time` only the first
  // and last stamps and the count are kept (TTFT and TPOT need no more; a planner's millions of
  // simulated tokens would otherwise all be stored).
  void AddToken(int64_t now_us, bool keep_time = true) {
    if (output_tokens == 0) first_token_us = now_us;
    last_token_us = now_us;
    ++output_tokens;
    if (keep_time) token_us.push_back(now_us);
  }

  // Whether it met its targets: finished normally (stop or length) and within each one.
  bool slo_met() const {
    return (finish_reason == FinishReason::kStop || finish_reason == FinishReason::kLength) &&
           slo.Met(ttft_ms(), tpot_ms());
  }

  // The one log line of a finished request.
  std::string Summary() const;
};

}  // namespace tandem
