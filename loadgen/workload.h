// What a benchmark sends: one BenchRequest per request, from a data set, a trace or a generator.
//   random     prompts of random token ids, lengths uniform in [len*(1-r), len*(1+r)]
//              (vLLM's --random-input-len/--random-output-len/--random-range-ratio);
//   sharegpt   ShareGPT-format JSON, first human turn as the prompt, the answer's token count as
//              the output length, vLLM's filters (needs --tokenizer);
//   custom     JSONL {"prompt": text or token ids, "output_len": n, "slo_class": optional};
//   trace      timed requests: Mooncake-style JSONL {"timestamp": ms, "input_length": n,
//              "output_length": m, "hash_ids": optional} or the Azure LLM inference CSV
//              (TIMESTAMP,ContextTokens,GeneratedTokens); replayed on their own schedule;
//   synthetic  presets (chatbot, code, summarization, long-context) whose lengths follow
//              published statistics (synthetic_presets.h names them);
//   multi-turn conversations (loadgen/multi_turn.h): each turn's prompt is the conversation so
//              far (previous prompt + the server's answer) plus a new message, after a system
//              prompt all conversations share; the next turn goes when the answer is in.
// Prompts that a data set gives only as lengths are made of real token ids, so their length is
// exact on /v1/completions; the chat endpoint needs text, decoded with --tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "tokenizer/tokenizer.h"

namespace tandem::loadgen {

struct BenchRequest {
  std::vector<int32_t> prompt_ids;  // the exact prompt, when it is known as token ids
  std::string prompt_text;          // the prompt as text (data sets of text; ids decoded for chat)
  int32_t prompt_len = 0;           // tokens; 0 when unknown (the server's usage then tells)
  int32_t output_len = 0;           // max_tokens asked for
  std::string slo_class;            // "" for none
  double timestamp_ms = -1;         // a trace's send time; -1 when the data set has none
  // Multi-turn: the index of the turn before this one in its conversation (-1: a first turn or
  // an independent request). A later turn is sent once that one has ended (not on the
  // schedule), as the conversation so far plus prompt_text, its new message.
  int64_t previous_turn = -1;
  int32_t turn = 0;
  std::string system_text;  // first turns: a system prompt before the message
};

struct Workload {
  std::vector<BenchRequest> requests;
  bool timed = false;   // every request has a timestamp (a trace)
  int64_t skipped = 0;  // entries dropped by the data set's filters
  int64_t clipped = 0;  // requests shortened to fit --max-model-len
};

struct WorkloadOptions {
  std::string dataset_name = "random";
  std::string dataset_path;
  std::string preset;  // synthetic
  int64_t num_prompts = 1000;
  int32_t random_input_len = 1024;
  int32_t random_output_len = 128;
  double random_range_ratio = 0;
  int32_t sharegpt_output_len = 0;  // > 0: overrides the answer's length
  int32_t custom_output_len = 256;  // custom lines without "output_len"
  int32_t max_model_len = 0;        // > 0: prompt + output clipped to it
  uint64_t seed = 0;
  const Tokenizer* tokenizer = nullptr;  // optional for random, synthetic and trace
  int32_t multi_turn_turns = 4;          // multi-turn: turns per conversation
  int32_t multi_turn_system_len = 0;     // multi-turn: tokens of the system prompt all share
};

// InvalidArgument / NotFound naming the file, the line and the field at fault; a data set that
// yields no request at all is an error too.
Result<Workload> LoadWorkload(const WorkloadOptions& options);

// The parsers behind LoadWorkload, one per format (exposed for tests). `num_prompts` <= 0: all.
Result<Workload> LoadShareGpt(const std::string& path, const WorkloadOptions& options);
Result<Workload> LoadCustom(const std::string& path, const WorkloadOptions& options);
Result<Workload> LoadTrace(const std::string& path, const WorkloadOptions& options);

// Token ids for a prompt of `len` tokens: uniform over ordinary tokens (the tokenizer's ids that
// are not special, or [100, 30000) without a tokenizer, which every Llama-family vocabulary
// holds), deterministic in `seed`.
class PromptMaker {
 public:
  PromptMaker(const Tokenizer* tokenizer, uint64_t seed);
  std::vector<int32_t> Random(int32_t len);
  // A Mooncake trace's blocks: every hash id stands for the same 512 tokens wherever it
  // appears, so requests that share a prefix in the trace share it here too.
  std::vector<int32_t> FromHashIds(const std::vector<int64_t>& hash_ids, int32_t len);

 private:
  int32_t Draw(uint64_t* state) const;
  std::vector<int32_t> ordinary_;  // allowed ids, or empty for the default range
  uint64_t state_;
};

// Prompt + output of every request brought within `max_model_len` (prompt shortened first, at
// least one prompt and one output token kept); returns how many were changed.
int64_t ClipToModelLen(std::vector<BenchRequest>* requests, int32_t max_model_len);

}  // namespace tandem::loadgen
