// `tandem make-model`: writes a complete HF-format Llama checkpoint with seeded random weights
// and the built-in tokenizer, so that every other command can be tried without a download.
#include <iostream>
#include <memory>
#include <string>

#include "apps/command.h"
#include "model/make_model.h"

namespace tandem {
namespace {

std::pair<CLI::App*, CommandRunner> SetupMakeModel(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "make-model", "Write a small HF-format LlamaForCausalLM (random weights, built-in tokenizer)");
  auto options = std::make_shared<MakeModelOptions>();
  std::string presets;
  for (const ModelPreset& p : ModelPresets()) {
    presets += (presets.empty() ? "" : "|") + p.name;
  }
  sub->add_option("--preset", options->preset, "Model shape: " + presets)->capture_default_str();
  sub->add_option("--out", options->out_dir, "Output directory (created if missing)")->required();
  sub->add_option("--seed", options->seed, "Weight seed; same seed, same bytes")
      ->capture_default_str();
  sub->add_option("--dtype", options->dtype, "Stored weight dtype: bf16, f16 or f32")->capture_default_str();
  sub->add_flag("--force", options->force,
                "Write into a non-empty directory, replacing any safetensors files there");
  return {sub, [options] {
            const Status st = MakeModel(*options);
            if (!st.ok()) return ReportError(st);
            auto preset = FindModelPreset(options->preset);
            std::cout << "wrote " << options->preset << " model ("
                      << (preset.ok() ? preset->NumParameters() : 0) << " parameters, seed "
                      << options->seed << ") to " << options->out_dir << std::endl;
            return 0;
          }};
}

TANDEM_REGISTER_COMMAND(SetupMakeModel);

}  // namespace
}  // namespace tandem
