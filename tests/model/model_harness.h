// Loads a checkpoint on the CPU backend and runs forwards the way the tests need them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/backend.h"
#include "engine/engine.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"
#include "model/transformer.h"

namespace tandem::testing {

inline std::string GoldenDir(const std::string& name) {
  return std::string(TANDEM_TEST_DATA_DIR) + "/golden/" + name;
}

struct ModelHarness {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<Transformer> transformer;
  std::unique_ptr<KvCache> cache;

  static std::unique_ptr<ModelHarness> Load(const std::string& dir, int32_t num_blocks = 256,
                                            int32_t block_size = 16) {
    auto h = std::make_unique<ModelHarness>();
    auto backend = CreateBackend("cpu");
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    if (!backend.ok()) return nullptr;
    h->backend = std::move(backend).value();
    auto weights = LoadModelWeights(dir, *h->backend);
    EXPECT_TRUE(weights.ok()) << weights.status().ToString();
    if (!weights.ok()) return nullptr;
    h->weights = std::move(weights).value();
    auto t = Transformer::Create(*h->backend, *h->weights);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return nullptr;
    h->transformer = std::move(t).value();
    KvCacheOptions kv;
    kv.num_blocks = num_blocks;
    kv.block_size = block_size;
    auto cache = KvCache::Create(*h->backend, h->weights->config, kv);
    EXPECT_TRUE(cache.ok()) << cache.status().ToString();
    if (!cache.ok()) return nullptr;
    h->cache = std::move(cache).value();
    return h;
  }

  int64_t vocab() const { return weights->config.vocab_size; }

  // Logits [tokens.size(), vocab] of one sequence's full forward from an empty cache.
  std::vector<float> ForwardAll(const std::vector<int32_t>& tokens) {
    auto blocks = cache->pool().Allocate(BlocksForTokens(tokens.size(), cache->block_size()));
    EXPECT_TRUE(blocks.ok());
    SequenceChunk c;
    c.tokens = tokens;
    c.block_table = *blocks;
    c.all_logits = true;
    std::vector<float> logits;
    auto plan = BuildBatchPlan(std::span<const SequenceChunk>(&c, 1), cache->block_size());
    EXPECT_TRUE(plan.ok());
    Status s = transformer->Forward(*plan, *cache, &logits);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(cache->pool().Free(*blocks).ok());
    return logits;
  }

  // Greedy continuation of `prompt` through the Engine (EOS ignored).
  std::vector<int32_t> Greedy(const std::vector<int32_t>& prompt, int max_tokens) {
    Engine engine(*transformer, *cache, EngineOptions{});
    Request r;
    r.id = 1;
    r.prompt = prompt;
    r.params.temperature = 0.0f;
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    Status s = engine.Add(std::move(r));
    EXPECT_TRUE(s.ok()) << s.ToString();
    while (engine.HasWork()) {
      auto out = engine.Step();
      EXPECT_TRUE(out.ok()) << out.status().ToString();
      if (!out.ok()) break;
    }
    auto done = engine.TakeFinished(1);
    return done ? done->output : std::vector<int32_t>{};
  }
};

// max |a - b| / max |b|
inline double RelMaxError(const float* a, const float* b, size_t n) {
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::abs(double(a[i]) - double(b[i])));
    max_ref = std::max(max_ref, std::abs(double(b[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

}  // namespace tandem::testing
