#include "apps/workload_flags.h"

#include <limits>

#include "loadgen/synthetic_presets.h"

namespace tandem {

Result<std::unique_ptr<Tokenizer>> WorkloadFlags::LoadTokenizer() const {
  if (tokenizer.empty()) return std::unique_ptr<Tokenizer>();
  return Tokenizer::FromModelDir(tokenizer);
}

loadgen::WorkloadOptions WorkloadFlags::Options(const Tokenizer* tok) const {
  loadgen::WorkloadOptions wo;
  wo.dataset_name = dataset_name;
  wo.dataset_path = dataset_path;
  wo.preset = preset;
  wo.num_prompts = num_prompts;
  wo.random_input_len = random_input_len;
  wo.random_output_len = random_output_len;
  wo.random_range_ratio = random_range_ratio;
  wo.sharegpt_output_len = sharegpt_output_len;
  wo.custom_output_len = custom_output_len;
  wo.max_model_len = max_model_len;
  wo.seed = seed;
  wo.tokenizer = tok;
  wo.multi_turn_turns = multi_turn_turns;
  wo.multi_turn_system_len = multi_turn_system_len;
  return wo;
}

Result<double> WorkloadFlags::Rate() const {
  if (request_rate == "inf" || request_rate == "Inf" || request_rate == "INF") {
    return std::numeric_limits<double>::infinity();
  }
  try {
    size_t used = 0;
    const double v = std::stod(request_rate, &used);
    if (used == request_rate.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  return InvalidArgumentError("--request-rate '" + request_rate + "': a positive number or inf");
}

void AddWorkloadOptions(CLI::App& cmd, WorkloadFlags& f) {
  cmd.add_option("--tokenizer", f.tokenizer, "a local HF model folder: counts text prompts, decodes ids for chat");
  cmd.add_option("--dataset-name", f.dataset_name, "random|sharegpt|custom|trace|synthetic|multi-turn")->capture_default_str();
  cmd.add_option("--dataset-path", f.dataset_path, "the sharegpt JSON, custom JSONL or trace (JSONL or CSV)");
  std::string presets;
  for (const loadgen::SyntheticPreset& p : loadgen::SyntheticPresets())
    presets += (presets.empty() ? "" : "|") + p.name;
  cmd.add_option("--synthetic-preset", f.preset, presets);
  cmd.add_option("--num-prompts", f.num_prompts, "requests to send")->capture_default_str();
  cmd.add_option("--request-rate", f.request_rate, "requests/s, or inf: all at once (a trace: its own times)")
      ->capture_default_str();
  cmd.add_option("--burstiness", f.burstiness, "gamma shape of the gaps: 1 Poisson, <1 burstier")
      ->capture_default_str();
  cmd.add_option("--random-input-len", f.random_input_len)->capture_default_str();
  cmd.add_option("--random-output-len", f.random_output_len)->capture_default_str();
  cmd.add_option("--random-range-ratio", f.random_range_ratio, "lengths uniform in [len*(1-r), len*(1+r)]")
      ->capture_default_str();
  cmd.add_option("--sharegpt-output-len", f.sharegpt_output_len, "override the answers' lengths");
  cmd.add_option("--custom-output-len", f.custom_output_len, "output length of custom lines without one")
      ->capture_default_str();
  cmd.add_option("--max-model-len", f.max_model_len, "clip prompt + output to this many tokens");
  cmd.add_option("--multi-turn-turns", f.multi_turn_turns, "multi-turn: turns per conversation")
      ->capture_default_str();
  cmd.add_option("--multi-turn-system-len", f.multi_turn_system_len,
                 "multi-turn: tokens of the system prompt every conversation opens with")
      ->capture_default_str();
  cmd.add_option("--seed", f.seed)->capture_default_str();
}

}  // namespace tandem
