// Shared pieces of the node tests: a tiny model made once per process in a temp dir, and the
// single-process reference (model/engine.h) that disaggregated output must equal.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/backend.h"
#include "engine/engine.h"
#include "model/kv_cache.h"
#include "model/make_model.h"
#include "model/model_weights.h"
#include "model/transformer.h"

namespace tandem::testing {

// The tiny preset written once per test process (removed at exit).
inline const std::string& TinyModelDir() {
  static const std::string dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tandem_nodes_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return std::string();
    MakeModelOptions o;
    o.preset = "tiny";
    o.out_dir = tmpl + "/model";
    o.seed = 7;
    if (!MakeModel(o).ok()) return std::string();
    static std::string cleanup = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(cleanup, ec);
    });
    return o.out_dir;
  }();
  return dir;
}

struct TestPrompt {
  std::vector<int32_t> prompt;
  SamplingParams params;
};

// Five prompts of different lengths (one spans several blocks, one is chunked by a small
// token budget), greedy or seeded sampling.
inline std::vector<TestPrompt> FivePrompts(bool greedy) {
  std::vector<TestPrompt> out;
  const int lengths[] = {3, 17, 40, 9, 70};
  for (int i = 0; i < 5; ++i) {
    TestPrompt p;
    for (int t = 0; t < lengths[i]; ++t) p.prompt.push_back(100 + (t * 37 + i * 101) % 900);
    p.params.max_tokens = 6 + 3 * i;
    p.params.ignore_eos = (i % 2) == 0;
    if (greedy) {
      p.params.temperature = 0.0f;
    } else {
      p.params.temperature = 0.9f;
      p.params.top_p = 0.95f;
      p.params.top_k = 50;
      p.params.repetition_penalty = 1.1f;
      p.params.seed = 1000 + i;
    }
    out.push_back(std::move(p));
  }
  return out;
}

// Single-process reference outputs, one engine run with all prompts at once.
inline std::vector<std::vector<int32_t>> ReferenceOutputs(const std::string& model_dir,
                                                          const std::vector<TestPrompt>& prompts) {
  std::vector<std::vector<int32_t>> out(prompts.size());
  auto backend = CreateBackend("cpu");
  EXPECT_TRUE(backend.ok());
  auto weights = LoadModelWeights(model_dir, **backend);
  EXPECT_TRUE(weights.ok()) << weights.status().ToString();
  auto transformer = Transformer::Create(**backend, **weights);
  EXPECT_TRUE(transformer.ok());
  KvCacheOptions kv;
  kv.num_blocks = 256;
  auto cache = KvCache::Create(**backend, (*weights)->config, kv);
  EXPECT_TRUE(cache.ok());
  Engine engine(**transformer, **cache, EngineOptions{});
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.id = static_cast<int64_t>(i);
    r.prompt = prompts[i].prompt;
    r.params = prompts[i].params;
    EXPECT_TRUE(engine.Add(std::move(r)).ok());
  }
  for (int guard = 0; engine.HasWork() && guard < 10000; ++guard) {
    auto step = engine.Step();
    EXPECT_TRUE(step.ok()) << step.status().ToString();
    if (!step.ok()) break;
    for (const StepOutput& o : *step) {
      if (o.token >= 0) out[static_cast<size_t>(o.request_id)].push_back(o.token);
    }
  }
  return out;
}

}  // namespace tandem::testing
