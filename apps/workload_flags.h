// The workload and arrival flags `tandem bench` and `tandem simulate` share (vLLM's names), so a
// simulated run is given exactly what a measured one is.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "loadgen/workload.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

struct WorkloadFlags {
  std::string dataset_name = "random", dataset_path, preset, tokenizer;
  int64_t num_prompts = 1000;
  std::string request_rate = "inf";
  double burstiness = 1.0;
  int32_t random_input_len = 1024, random_output_len = 128, sharegpt_output_len = 0, custom_output_len = 256;
  int32_t max_model_len = 0;
  double random_range_ratio = 0;
  uint64_t seed = 0;
  int32_t multi_turn_turns = 4;
  int32_t multi_turn_system_len = 0;

  // --tokenizer's tokenizer (null without one). Errors: the loader's.
  Result<std::unique_ptr<Tokenizer>> LoadTokenizer() const;
  loadgen::WorkloadOptions Options(const Tokenizer* tokenizer) const;
  // --request-rate: a positive number or inf. InvalidArgument otherwise.
  Result<double> Rate() const;
  // "synthetic:chatbot", "random", ...
  std::string DatasetLabel() const { return dataset_name + (preset.empty() ? "" : ":" + preset); }
};

// --dataset-name, --dataset-path, --synthetic-preset, --tokenizer, --num-prompts, --request-rate,
// --burstiness, --random-input-len, --random-output-len, --random-range-ratio,
// --sharegpt-output-len, --custom-output-len, --max-model-len, --multi-turn-turns,
// --multi-turn-system-len, --seed.
void AddWorkloadOptions(CLI::App& cmd, WorkloadFlags& flags);

}  // namespace tandem
