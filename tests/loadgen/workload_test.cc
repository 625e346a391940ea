#include "loadgen/workload.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "loadgen/synthetic_presets.h"
#include "loadgen/trace_formats.h"
#include "slo/request_log.h"
#include "tests/loadgen/builtin_tokenizer.h"

namespace tandem::loadgen {
namespace {

const Tokenizer& TestTokenizer() { return testing::BuiltinTokenizer(); }

class WorkloadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("loadgen_workload_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::string Data(const std::string& name) { return std::string(TANDEM_TEST_DATA_DIR) + "/loadgen/" + name; }
  std::filesystem::path dir_;
};

TEST(RandomWorkloadTest, LengthsStayInTheRangeAndPromptsAreExact) {
  WorkloadOptions o;
  o.num_prompts = 500;
  o.random_input_len = 100;
  o.random_output_len = 20;
  o.random_range_ratio = 0.5;
  o.seed = 1;
  auto w = LoadWorkload(o);
  ASSERT_TRUE(w.ok());
  std::set<int32_t> lens;
  for (const BenchRequest& r : w->requests) {
    EXPECT_GE(r.prompt_len, 50);
    EXPECT_LE(r.prompt_len, 150);
    EXPECT_GE(r.output_len, 10);
    EXPECT_LE(r.output_len, 30);
    EXPECT_EQ(r.prompt_ids.size(), static_cast<size_t>(r.prompt_len));
    for (int32_t id : r.prompt_ids) EXPECT_TRUE(id >= 100 && id < 30000);
    lens.insert(r.prompt_len);
  }
  EXPECT_GT(lens.size(), 50u);
  EXPECT_EQ(LoadWorkload(o)->requests[7].prompt_ids, w->requests[7].prompt_ids);  // seeded
  o.random_range_ratio = 1.0;
  EXPECT_FALSE(LoadWorkload(o).ok());
}

TEST(RandomWorkloadTest, WithATokenizerNoSpecialTokenIsDrawn) {
  WorkloadOptions o;
  o.num_prompts = 50;
  o.random_input_len = 200;
  o.tokenizer = &TestTokenizer();
  auto w = LoadWorkload(o);
  ASSERT_TRUE(w.ok());
  for (const BenchRequest& r : w->requests) {
    for (int32_t id : r.prompt_ids) EXPECT_FALSE(TestTokenizer().IsSpecial(id));
  }
}

TEST_F(WorkloadFiles, ShareGptFirstHumanTurnAndVllmFilters) {
  WorkloadOptions o;
  o.tokenizer = &TestTokenizer();
  o.num_prompts = 0;
  auto w = LoadShareGpt(Data("sharegpt_sample.json"), o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_GT(w->requests.size(), 3u);
  EXPECT_GT(w->skipped, 0);  // the sample holds entries the filters drop
  for (const BenchRequest& r : w->requests) {
    EXPECT_GE(r.prompt_len, 4);
    EXPECT_GE(r.output_len, 4);
    EXPECT_LE(r.prompt_len, 1024);
    EXPECT_LE(r.prompt_len + r.output_len, 2048);
    EXPECT_FALSE(r.prompt_text.empty());
    EXPECT_EQ(r.prompt_len, static_cast<int32_t>(TestTokenizer().Encode(r.prompt_text)->size()));
  }
  o.num_prompts = 2;
  EXPECT_EQ(LoadShareGpt(Data("sharegpt_sample.json"), o)->requests.size(), 2u);
  o.sharegpt_output_len = 9;
  // Held in a variable: a range-for over `Temporary()->member` reads a destroyed temporary.
  auto fixed = LoadShareGpt(Data("sharegpt_sample.json"), o);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  for (const BenchRequest& r : fixed->requests) EXPECT_EQ(r.output_len, 9);
}

TEST_F(WorkloadFiles, ShareGptBadFilesSayWhatIsWrong) {
  WorkloadOptions o;
  o.tokenizer = &TestTokenizer();
  EXPECT_FALSE(LoadShareGpt(Write("bad.json", "[{\"conversations\": ["), o).ok());
  EXPECT_FALSE(LoadShareGpt(Write("obj.json", "{\"conversations\": []}"), o).ok());
  auto no_conv = LoadShareGpt(Write("noconv.json", "[{\"id\": 1}]"), o);
  ASSERT_FALSE(no_conv.ok());
  EXPECT_NE(no_conv.status().message().find("conversations"), std::string::npos);
  EXPECT_FALSE(LoadShareGpt(Write("val.json", R"([{"conversations": [{"from": "human", "value": 5}, {}]}])"), o).ok());
  EXPECT_FALSE(LoadShareGpt((dir_ / "missing.json").string(), o).ok());
  WorkloadOptions no_tokenizer;
  no_tokenizer.dataset_name = "sharegpt";
  no_tokenizer.dataset_path = Data("sharegpt_sample.json");
  auto needs = LoadWorkload(no_tokenizer);
  ASSERT_FALSE(needs.ok());
  EXPECT_NE(needs.status().message().find("--tokenizer"), std::string::npos);
  o.dataset_name = "sharegpt";
  o.dataset_path = Write("empty.json", "[]");
  EXPECT_FALSE(LoadWorkload(o).ok());  // no request at all is an error
}

TEST_F(WorkloadFiles, CustomJsonl) {
  WorkloadOptions o;
  o.num_prompts = 0;
  auto w = LoadCustom(Data("custom_sample.jsonl"), o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_GE(w->requests.size(), 3u);
  EXPECT_FALSE(w->requests[0].prompt_text.empty());
  EXPECT_EQ(w->requests[0].prompt_len, 0);  // unknown without a tokenizer: usage tells
  bool saw_ids = false, saw_class = false;
  for (const BenchRequest& r : w->requests) {
    saw_ids |= !r.prompt_ids.empty();
    saw_class |= !r.slo_class.empty();
  }
  EXPECT_TRUE(saw_ids && saw_class);
  o.tokenizer = &TestTokenizer();
  EXPECT_GT(LoadCustom(Data("custom_sample.jsonl"), o)->requests[0].prompt_len, 0);
  for (const char* bad : {"{\"prompt\": \"x\"", "{\"output_len\": 5}", "{\"prompt\": \"x\", \"output_len\": -3}",
                          "{\"prompt\": \"x\", \"output_len\": \"many\"}", "{\"prompt\": 17}", "[1, 2]",
                          "{\"prompt\": \"\"}", "{\"prompt\": \"x\", \"slo_class\": 3}"}) {
    auto r = LoadCustom(Write("bad.jsonl", std::string("{\"prompt\": \"fine\"}\n") + bad + "\n"), o);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(":2"), std::string::npos) << r.status().message();  // names the line
  }
}

TEST_F(WorkloadFiles, MooncakeStyleTraceWithSharedPrefixBlocks) {
  WorkloadOptions o;
  o.dataset_name = "trace";
  o.dataset_path = Data("trace_sample.jsonl");
  o.num_prompts = 0;
  auto w = LoadWorkload(o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->timed);
  ASSERT_GE(w->requests.size(), 4u);
  for (size_t i = 1; i < w->requests.size(); ++i)
    EXPECT_LE(w->requests[i - 1].timestamp_ms, w->requests[i].timestamp_ms);
  // Rows 0 and 1 of the sample share hash id 11 as their first block: the same 512 tokens.
  const BenchRequest* a = nullptr;
  const BenchRequest* b = nullptr;
  for (const BenchRequest& r : w->requests) {
    if (r.timestamp_ms == 0) a = &r;
    if (r.timestamp_ms == 250) b = &r;
  }
  ASSERT_TRUE(a && b);
  ASSERT_GE(a->prompt_ids.size(), 512u);
  EXPECT_TRUE(std::equal(a->prompt_ids.begin(), a->prompt_ids.begin() + 512, b->prompt_ids.begin()));
  EXPECT_NE(a->prompt_ids.back(), -1);
}

TEST_F(WorkloadFiles, AzureCsvTraceWithSevenDigitFractions) {
  auto rows = ReadTraceFile(Data("azure_sample.csv"));
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_GE(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].input_length, 374);
  EXPECT_EQ((*rows)[0].output_length, 44);
  EXPECT_NEAR((*rows)[1].timestamp_ms - (*rows)[0].timestamp_ms, 1317.02, 1e-3);
  auto ms = ParseDateTimeMs("1970-01-02 00:00:01.5");
  ASSERT_TRUE(ms.ok());
  EXPECT_DOUBLE_EQ(*ms, 86401500);
  EXPECT_FALSE(ParseDateTimeMs("yesterday").ok());
}

TEST_F(WorkloadFiles, BadTracesNameTheLine) {
  for (const char* bad :
       {"{\"timestamp\": 0, \"input_length\": 5}", "{\"timestamp\": -1, \"input_length\": 5, \"output_length\": 2}",
        "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 2}",
        "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2, \"hash_ids\": [\"a\"]}", "{oops"}) {
    auto r = ReadTraceFile(Write(
        "bad.jsonl", std::string("{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2}\n") + bad + "\n"));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(":2"), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(ReadTraceFile(Write("empty.jsonl", "\n\n")).ok());
  EXPECT_FALSE(ReadTraceFile(Write("hdr.csv", "time,in,out\n1,2,3\n")).ok());
  EXPECT_FALSE(ReadTraceFile(Write("neg.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n0,-4,3\n")).ok());
  EXPECT_FALSE(ReadTraceFile(Write("short.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n0,4\n")).ok());
}

TEST_F(WorkloadFiles, ARouterRequestLogReplaysAsATrace) {
  const std::string path = (dir_ / "requests.jsonl").string();
  {
    auto log = RequestLog::Open(path);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < 3; ++i) {
      RequestRecord r;
      r.id = i;
      r.prompt_tokens = 10 + i;
      r.max_tokens = 20;
      r.arrival_us = 1'000'000 + 250'000 * i;
      r.slo.class_name = i == 1 ? "batch" : "";
      r.AddToken(r.arrival_us + 1000);
      r.finish_reason = i == 2 ? FinishReason::kError : FinishReason::kStop;
      (*log)->Write(r);
    }
  }
  WorkloadOptions o;
  o.dataset_name = "trace";
  o.dataset_path = path;
  o.num_prompts = 0;
  auto w = LoadWorkload(o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_EQ(w->requests.size(), 3u);
  EXPECT_EQ(w->requests[1].prompt_len, 11);
  EXPECT_EQ(w->requests[1].slo_class, "batch");
  EXPECT_EQ(w->requests[0].output_len, 1);   // produced one token, then stopped
  EXPECT_EQ(w->requests[2].output_len, 20);  // failed: replayed with what it asked for
  EXPECT_NEAR(w->requests[2].timestamp_ms - w->requests[0].timestamp_ms, 500, 0.01);
}

TEST(SyntheticWorkloadTest, PresetsFollowTheirPublishedMeans) {
  for (const SyntheticPreset& p : SyntheticPresets()) {
    WorkloadOptions o;
    o.dataset_name = "synthetic";
    o.preset = p.name;
    o.num_prompts = 4000;
    o.seed = 5;
    auto w = LoadWorkload(o);
    ASSERT_TRUE(w.ok()) << p.name;
    double in = 0, out = 0;
    for (const BenchRequest& r : w->requests) {
      EXPECT_GE(r.prompt_len, p.input.lo);
      EXPECT_LE(r.prompt_len, p.input.hi);
      EXPECT_EQ(r.prompt_ids.size(), static_cast<size_t>(r.prompt_len));
      in += r.prompt_len;
      out += r.output_len;
    }
    in /= 4000;
    out /= 4000;
    // Clipping to the published bounds moves the mean a little; 15% covers it for every preset.
    EXPECT_NEAR(in, p.input.mean(), 0.15 * p.input.mean()) << p.name;
    EXPECT_NEAR(out, p.output.mean(), 0.15 * p.output.mean()) << p.name;
  }
  WorkloadOptions o;
  o.dataset_name = "synthetic";
  o.preset = "poetry";
  EXPECT_FALSE(LoadWorkload(o).ok());
}

TEST(ClipTest, MaxModelLenShortensPromptsFirst) {
  std::vector<BenchRequest> rs(2);
  rs[0].prompt_len = 3000;
  rs[0].prompt_ids.assign(3000, 5);
  rs[0].output_len = 100;
  rs[1].prompt_len = 10;
  rs[1].output_len = 10;
  EXPECT_EQ(ClipToModelLen(&rs, 2048), 1);
  EXPECT_EQ(rs[0].prompt_len, 1948);
  EXPECT_EQ(rs[0].prompt_ids.size(), 1948u);
  EXPECT_EQ(rs[0].output_len, 100);
  EXPECT_EQ(rs[1].prompt_len, 10);
}

}  // namespace
}  // namespace tandem::loadgen
