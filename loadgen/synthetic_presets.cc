#include "loadgen/synthetic_presets.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace tandem::loadgen {

namespace {

// sigma of a log-normal with this mean and median: mean = median * exp(sigma^2 / 2).
double SigmaFromMeanMedian(double mean, double median) { return std::sqrt(2.0 * std::log(mean / median)); }

int32_t Draw(const LengthDist& d, std::mt19937_64& rng) {
  double x = 0;
  if (d.sigma < 0) {
    x = std::uniform_real_distribution<double>(d.lo, d.hi + 1.0)(rng);
  } else {
    x = std::lognormal_distribution<double>(std::log(d.median), d.sigma)(rng);
  }
  return std::clamp(static_cast<int32_t>(std::floor(x)), d.lo, d.hi);
}

}  // namespace

double LengthDist::mean() const {
  if (sigma < 0) return (lo + hi) / 2.0;
  return median * std::exp(sigma * sigma / 2);
}

const std::vector<SyntheticPreset>& SyntheticPresets() {
  static const std::vector<SyntheticPreset> presets = {
      {"chatbot",
       "ShareGPT-like chat: short prompts, long answers",
       "ShareGPT means from the vLLM paper (Kwon et al., SOSP'23, Fig. 11: input 161.31, output 337.99 "
       "tokens); log-normal shape with sigma 1 assumed; bounds from vLLM's ShareGPT filter (prompt "
       "4..1024 tokens, output 4..2044). SLO: DistServe's chatbot, OPT-13B (TTFT 0.25 s, TPOT 0.1 s)",
       {161.31 / std::exp(0.5), 1.0, 4, 1024},
       {337.99 / std::exp(0.5), 1.0, 4, 2044},
       250,
       100},
      {"code",
       "HumanEval-like code completion: medium prompts, short answers",
       "HumanEval (openai/human-eval data/HumanEval.jsonl.gz, 164 problems) counted with tiktoken "
       "cl100k_base: prompt mean 131.3 / median 117 (min 38, max 391), canonical solution mean 53.8 / "
       "median 46 (min 5, max 240); log-normal fitted to mean and median. SLO: DistServe's code completion, "
       "OPT-66B (TTFT 0.125 s, TPOT 0.2 s)",
       {117, SigmaFromMeanMedian(131.3, 117), 38, 391},
       {46, SigmaFromMeanMedian(53.8, 46), 5, 240},
       125,
       200},
      {"summarization",
       "LongBench summarization as DistServe ran it: ~2k-token documents",
       "DistServe's LongBench workload cuts every context to 1,900..2,040 tokens for OPT's 2,048-token "
       "window (LLMServe/DistServe evaluation/2-benchmark-serving/0-prepare-dataset.py): uniform there. "
       "Output lengths are not published; LongBench caps summarization answers at 512 tokens "
       "(config/dataset2maxlen.json): uniform 64..512 assumed. SLO: DistServe's summarization, OPT-66B "
       "(TTFT 15 s, TPOT 0.15 s)",
       {0, -1, 1900, 2040},
       {0, -1, 64, 512},
       15000,
       150},
      {"long-context",
       "LongBench-length documents (clip with --max-model-len for small models)",
       "LongBench English tasks average 6,711 words (Bai et al., 2023, abstract); at 1.3 tokens per word "
       "(assumed) about 8,700 tokens: log-normal with that mean, sigma 0.5 assumed, 1,024..32,768 tokens. "
       "Outputs: LongBench's per-task caps are 32..512 tokens (config/dataset2maxlen.json): uniform 32..512 "
       "assumed. No DistServe SLO",
       {8724.3 / std::exp(0.125), 0.5, 1024, 32768},
       {0, -1, 32, 512},
       0,
       0},
      {"azure-conversation",
       "Azure LLM inference trace 2023, conversation (Splitwise)",
       "AzureLLMInferenceTrace_conv.csv (19,366 requests): ContextTokens mean 1154.7 / median 1020 (max "
       "14050), GeneratedTokens mean 211.1 / median 129 (max 1000); log-normal fitted to mean and median",
       {1020, SigmaFromMeanMedian(1154.7, 1020), 1, 14050},
       {129, SigmaFromMeanMedian(211.1, 129), 1, 1000},
       0,
       0},
      {"azure-code",
       "Azure LLM inference trace 2023, code (Splitwise)",
       "AzureLLMInferenceTrace_code.csv (8,819 requests): ContextTokens mean 2047.8 / median 1469 (max "
       "7437), GeneratedTokens mean 27.9 / median 13 (max 1899); log-normal fitted to mean and median",
       {1469, SigmaFromMeanMedian(2047.8, 1469), 1, 7437},
       {13, SigmaFromMeanMedian(27.9, 13), 1, 1899},
       0,
       0},
  };
  return presets;
}

Result<SyntheticPreset> FindSyntheticPreset(const std::string& name) {
  std::string known;
  for (const SyntheticPreset& p : SyntheticPresets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  return InvalidArgumentError("--synthetic-preset '" + name + "': expected one of " + known);
}

Result<Workload> GenerateSynthetic(const WorkloadOptions& o) {
  if (o.preset.empty()) return InvalidArgumentError("--dataset-name synthetic needs --synthetic-preset");
  auto preset = FindSyntheticPreset(o.preset);
  if (!preset.ok()) return preset.status();
  std::mt19937_64 rng(o.seed);
  PromptMaker maker(o.tokenizer, o.seed ^ 0x517eULL);
  Workload w;
  for (int64_t i = 0; i < o.num_prompts; ++i) {
    BenchRequest r;
    r.prompt_len = Draw(preset->input, rng);
    r.output_len = Draw(preset->output, rng);
    r.prompt_ids = maker.Random(r.prompt_len);
    w.requests.push_back(std::move(r));
  }
  return w;
}

}  // namespace tandem::loadgen
