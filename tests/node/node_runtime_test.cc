#include "node/node_runtime.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "common/file_io.h"
#include "model/make_model.h"

namespace tandem {
namespace {

// A node with a profile compares each step it runs with the model's prediction; the factor it
// reports follows measured / predicted, per the step's phase.
TEST(NodeRuntimeTest, ObservedStepsCorrectTheProfile) {
  NodeRuntime rt;
  EXPECT_EQ(rt.latency_factor(), 0.0f);  // no profile: nothing to report
  StepShape decode;
  decode.decode_batch = 4;
  decode.decode_context = 1000;
  rt.ObserveStep(decode, 12345);
  EXPECT_EQ(rt.latency_factor(), 0.0f);

  LatencyProfile p;
  p.prefill = {{0, 1000, 10, 0}};
  p.decode = {{0, 2000, 1, 0}};
  rt.profile = p;
  EXPECT_EQ(rt.latency_factor(), 1.0f);                        // until a step says otherwise
  for (int i = 0; i < 200; ++i) rt.ObserveStep(decode, 6000);  // predicted 3000 us
  EXPECT_NEAR(rt.latency_factor(), 2.0f, 1e-3);
  StepShape prefill;
  prefill.prefill.AddChunk(0, 100);  // predicted 2000 us
  for (int i = 0; i < 200; ++i) rt.ObserveStep(prefill, 1000);
  EXPECT_NEAR(rt.latency_factor(), 0.5f, 1e-3);
}

// A profile measured for another model is refused at start-up, naming both layer counts.
TEST(NodeRuntimeTest, AProfileOfAnotherModelIsRefused) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("tandem_runtime_test_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  MakeModelOptions m;
  m.preset = "tiny";
  m.out_dir = dir + "/model";
  ASSERT_TRUE(MakeModel(m).ok());
  LatencyProfile p;
  p.num_layers = 99;
  p.prefill = {{0, 1000, 10, 0}};
  p.decode = {{0, 2000, 1, 0}};
  ASSERT_TRUE(WriteTextFile(dir + "/profile.json", p.ToJson()).ok());
  NodeRuntimeOptions o;
  o.model_dir = dir + "/model";
  o.threads = 1;
  o.latency_profile = dir + "/profile.json";
  auto rt = LoadNodeRuntime(o);
  EXPECT_EQ(rt.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rt.status().message().find("99 layers"), std::string::npos) << rt.status().ToString();
  o.latency_profile = dir + "/missing.json";
  EXPECT_EQ(LoadNodeRuntime(o).status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
