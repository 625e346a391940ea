// Shared by the scheduler tests: a tiny model made once per test binary, greedy reference
// generation with a plain Engine, a fault-injecting backend, and a small HTTP client whose every
// operation is bounded by a timeout (127.0.0.1 only).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "kernels/backend.h"
#include "model/kv_cache.h"
#include "model/make_model.h"
#include "model/model_weights.h"
#include "model/transformer.h"
#include "tests/kernels/fault_injecting_backend.h"
#include "tests/support/test_http_client.h"

namespace tandem::testing {

// The tiny preset (seed 7) in a temp dir, created on first use and removed at exit.
inline const std::string& TinyModelDir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const fs::path root = fs::temp_directory_path() / ("tandem_scheduler_test_" + std::to_string(::getpid()));
    fs::remove_all(root);
    MakeModelOptions opt;
    opt.preset = "tiny";
    opt.seed = 7;
    opt.out_dir = (root / "tiny-chat").string();
    const Status st = MakeModel(opt);
    if (!st.ok()) {
      ADD_FAILURE() << "MakeModel: " << st.ToString();
      return std::string();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(
          std::filesystem::temp_directory_path() / ("tandem_scheduler_test_" + std::to_string(::getpid())), ec);
    });
    return opt.out_dir;
  }();
  return dir;
}

// Output ids of one request run alone through a fresh Engine: the reference the server must match.
inline std::vector<int32_t> ReferenceGenerate(const std::vector<int32_t>& prompt, const SamplingParams& params) {
  auto backend = CreateBackend("cpu");
  EXPECT_TRUE(backend.ok());
  auto weights = LoadModelWeights(TinyModelDir(), **backend);
  EXPECT_TRUE(weights.ok());
  KvCacheOptions kv;
  kv.num_blocks = 256;
  auto cache = KvCache::Create(**backend, (*weights)->config, kv);
  auto transformer = Transformer::Create(**backend, **weights);
  EXPECT_TRUE(cache.ok() && transformer.ok());
  Engine engine(**transformer, **cache, EngineOptions{});
  Request r;
  r.id = 1;
  r.prompt = prompt;
  r.params = params;
  EXPECT_TRUE(engine.Add(std::move(r)).ok());
  while (engine.HasWork()) {
    auto out = engine.Step();
    EXPECT_TRUE(out.ok());
    if (!out.ok()) break;
  }
  auto done = engine.TakeFinished(1);
  return done ? done->output : std::vector<int32_t>{};
}

}  // namespace tandem::testing
