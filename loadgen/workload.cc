#include "loadgen/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "common/file_io.h"

#include "loadgen/multi_turn.h"
#include "loadgen/synthetic_presets.h"
#include "loadgen/trace_formats.h"

namespace tandem::loadgen {

namespace {

constexpr int32_t kDefaultIdLo = 100;
constexpr int32_t kDefaultIdHi = 30000;
constexpr int32_t kHashBlockTokens = 512;  // Mooncake's trace block size

uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Tokens of `text` as vLLM counts them (tokenizer(text).input_ids: special tokens included).
Result<int32_t> TokenCount(const Tokenizer& tokenizer, const std::string& text) {
  auto encoded = tokenizer.Encode(text, /*add_special_tokens=*/true);
  if (!encoded.ok()) return encoded.status();
  return static_cast<int32_t>(encoded->size());
}

Result<Workload> LoadRandom(const WorkloadOptions& o) {
  if (o.random_input_len < 1 || o.random_output_len < 1) {
    return InvalidArgumentError("--random-input-len and --random-output-len must be at least 1");
  }
  if (!(o.random_range_ratio >= 0 && o.random_range_ratio < 1)) {
    return InvalidArgumentError("--random-range-ratio must be in [0, 1)");
  }
  std::mt19937_64 rng(o.seed);
  auto draw = [&](int32_t len) {
    const auto lo = std::max<int64_t>(1, static_cast<int64_t>(std::floor(len * (1 - o.random_range_ratio))));
    const auto hi = std::max<int64_t>(lo, static_cast<int64_t>(std::ceil(len * (1 + o.random_range_ratio))));
    return static_cast<int32_t>(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
  };
  PromptMaker maker(o.tokenizer, o.seed ^ 0x5eedULL);
  Workload w;
  for (int64_t i = 0; i < o.num_prompts; ++i) {
    BenchRequest r;
    r.prompt_len = draw(o.random_input_len);
    r.output_len = draw(o.random_output_len);
    r.prompt_ids = maker.Random(r.prompt_len);
    w.requests.push_back(std::move(r));
  }
  return w;
}

}  // namespace

PromptMaker::PromptMaker(const Tokenizer* tokenizer, uint64_t seed) : state_(seed) {
  if (tokenizer == nullptr) return;
  for (size_t id = 0; id < tokenizer->IdLimit(); ++id) {
    const auto tid = static_cast<int32_t>(id);
    if (!tokenizer->IsSpecial(tid) && tokenizer->IdToToken(tid)) ordinary_.push_back(tid);
  }
}

int32_t PromptMaker::Draw(uint64_t* state) const {
  const uint64_t x = SplitMix(state);
  if (ordinary_.empty()) return kDefaultIdLo + static_cast<int32_t>(x % (kDefaultIdHi - kDefaultIdLo));
  return ordinary_[x % ordinary_.size()];
}

std::vector<int32_t> PromptMaker::Random(int32_t len) {
  std::vector<int32_t> ids(static_cast<size_t>(std::max(len, 0)));
  for (int32_t& id : ids) id = Draw(&state_);
  return ids;
}

std::vector<int32_t> PromptMaker::FromHashIds(const std::vector<int64_t>& hash_ids, int32_t len) {
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(std::max(len, 0)));
  for (int64_t h : hash_ids) {
    uint64_t block_state = 0x6a09e667f3bcc909ULL ^ static_cast<uint64_t>(h);
    for (int32_t i = 0; i < kHashBlockTokens && static_cast<int32_t>(ids.size()) < len; ++i) {
      ids.push_back(Draw(&block_state));
    }
  }
  while (static_cast<int32_t>(ids.size()) < len) ids.push_back(Draw(&state_));
  return ids;
}

int64_t ClipToModelLen(std::vector<BenchRequest>* requests, int32_t max_model_len) {
  if (max_model_len < 2) return 0;
  int64_t clipped = 0;
  for (BenchRequest& r : *requests) {
    if (r.prompt_len + r.output_len <= max_model_len) continue;
    ++clipped;
    r.output_len = std::min(r.output_len, max_model_len - 1);
    const int32_t prompt = std::max(1, max_model_len - r.output_len);
    if (r.prompt_len > prompt) {
      r.prompt_len = prompt;
      if (!r.prompt_ids.empty()) r.prompt_ids.resize(static_cast<size_t>(prompt));
    }
  }
  return clipped;
}

Result<Workload> LoadShareGpt(const std::string& path, const WorkloadOptions& o) {
  if (o.tokenizer == nullptr) {
    return InvalidArgumentError("--dataset-name sharegpt needs --tokenizer (a model folder) to count tokens");
  }
  auto text = ReadTextFile(path);
  if (!text.ok()) return text.status().WithContext("ShareGPT file");
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    return InvalidArgumentError("ShareGPT file " + path + ": expected a JSON array of {\"conversations\": [...]}");
  }
  // vLLM's order: shuffle (seeded), then keep the first valid entries, tokenizing lazily.
  std::vector<size_t> order(j.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(o.seed);
  std::shuffle(order.begin(), order.end(), rng);
  Workload w;
  for (size_t idx : order) {
    if (o.num_prompts > 0 && static_cast<int64_t>(w.requests.size()) >= o.num_prompts) break;
    const nlohmann::json& entry = j[idx];
    const std::string where = "ShareGPT file " + path + ": entry " + std::to_string(idx);
    if (!entry.is_object() || !entry.contains("conversations") || !entry["conversations"].is_array()) {
      return InvalidArgumentError(where + " has no \"conversations\" array");
    }
    const nlohmann::json& turns = entry["conversations"];
    // The first human turn and the answer after it (vLLM takes turns 0 and 1, which is the
    // same thing for every entry that starts with the human).
    const nlohmann::json* question = nullptr;
    const nlohmann::json* answer = nullptr;
    for (size_t t = 0; t + 1 < turns.size(); ++t) {
      const nlohmann::json& turn = turns[t];
      if (!turn.is_object() || !turn.contains("value") || !turn["value"].is_string()) {
        return InvalidArgumentError(where + ": a turn without a string \"value\"");
      }
      const std::string from = turn.value("from", "");
      if (from == "human" || from == "user") {
        question = &turn;
        answer = &turns[t + 1];
        break;
      }
    }
    if (question == nullptr || !answer->is_object() || !answer->contains("value") || !(*answer)["value"].is_string()) {
      ++w.skipped;
      continue;
    }
    BenchRequest r;
    r.prompt_text = (*question)["value"].get<std::string>();
    auto prompt_len = TokenCount(*o.tokenizer, r.prompt_text);
    if (!prompt_len.ok()) return prompt_len.status();
    int32_t output_len = o.sharegpt_output_len;
    if (output_len <= 0) {
      auto counted = TokenCount(*o.tokenizer, (*answer)["value"].get<std::string>());
      if (!counted.ok()) return counted.status();
      output_len = *counted;
    }
    // vLLM's is_valid_sequence: too short (< 4 tokens) or too long (prompt > 1024, total >
    // 2048) entries are skipped; the output check is off when --sharegpt-output-len is given.
    const bool too_short = *prompt_len < 4 || (o.sharegpt_output_len <= 0 && output_len < 4);
    const bool too_long = *prompt_len > 1024 || *prompt_len + output_len > 2048;
    if (too_short || too_long) {
      ++w.skipped;
      continue;
    }
    r.prompt_len = *prompt_len;
    r.output_len = output_len;
    if (entry.contains("slo_class") && entry["slo_class"].is_string()) r.slo_class = entry["slo_class"];
    w.requests.push_back(std::move(r));
  }
  return w;
}

Result<Workload> LoadCustom(const std::string& path, const WorkloadOptions& o) {
  std::ifstream in(path);
  if (!in) return NotFoundError("custom data set " + path + ": cannot open");
  Workload w;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (o.num_prompts > 0 && static_cast<int64_t>(w.requests.size()) >= o.num_prompts) break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "custom data set " + path + ":" + std::to_string(line_no);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return InvalidArgumentError(where + ": not a JSON object");
    if (!j.contains("prompt")) return InvalidArgumentError(where + ": no \"prompt\"");
    BenchRequest r;
    const nlohmann::json& p = j["prompt"];
    if (p.is_string()) {
      r.prompt_text = p.get<std::string>();
      if (o.tokenizer) {
        auto n = TokenCount(*o.tokenizer, r.prompt_text);
        if (!n.ok()) return n.status();
        r.prompt_len = *n;
      }
    } else if (p.is_array() && !p.empty() &&
               std::all_of(p.begin(), p.end(), [](const auto& v) { return v.is_number_integer() && v >= 0; })) {
      r.prompt_ids = p.get<std::vector<int32_t>>();
      r.prompt_len = static_cast<int32_t>(r.prompt_ids.size());
    } else {
      return InvalidArgumentError(where + ": \"prompt\" must be a string or a non-empty array of token ids");
    }
    if (r.prompt_text.empty() && r.prompt_ids.empty()) return InvalidArgumentError(where + ": an empty prompt");
    r.output_len = o.custom_output_len;
    for (const char* key : {"output_len", "output_tokens", "max_tokens"}) {
      if (!j.contains(key)) continue;
      if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1 || j[key].get<int64_t>() > (1 << 30)) {
        return InvalidArgumentError(where + ": \"" + key + "\" must be a positive integer");
      }
      r.output_len = j[key].get<int32_t>();
      break;
    }
    if (j.contains("slo_class")) {
      if (!j["slo_class"].is_string()) return InvalidArgumentError(where + ": \"slo_class\" must be a string");
      r.slo_class = j["slo_class"];
    }
    w.requests.push_back(std::move(r));
  }
  if (in.bad()) return InternalError("custom data set " + path + ": read error");
  return w;
}

Result<Workload> LoadTrace(const std::string& path, const WorkloadOptions& o) {
  auto rows = ReadTraceFile(path);
  if (!rows.ok()) return rows.status();
  std::stable_sort(rows->begin(), rows->end(),
                   [](const TraceRow& a, const TraceRow& b) { return a.timestamp_ms < b.timestamp_ms; });
  Workload w;
  w.timed = true;
  PromptMaker maker(o.tokenizer, o.seed ^ 0x7ace5ULL);
  for (const TraceRow& row : *rows) {
    if (o.num_prompts > 0 && static_cast<int64_t>(w.requests.size()) >= o.num_prompts) break;
    BenchRequest r;
    r.timestamp_ms = row.timestamp_ms;
    r.prompt_len = row.input_length;
    r.output_len = row.output_length;
    r.slo_class = row.slo_class;
    r.prompt_ids = row.hash_ids.empty() ? maker.Random(r.prompt_len) : maker.FromHashIds(row.hash_ids, r.prompt_len);
    w.requests.push_back(std::move(r));
  }
  return w;
}

Result<Workload> LoadWorkload(const WorkloadOptions& o) {
  Result<Workload> w = InvalidArgumentError("--dataset-name '" + o.dataset_name +
                                            "': expected random, sharegpt, custom, trace, synthetic or multi-turn");
  const bool needs_path = o.dataset_name == "sharegpt" || o.dataset_name == "custom" || o.dataset_name == "trace";
  if (needs_path && o.dataset_path.empty()) {
    return InvalidArgumentError("--dataset-name " + o.dataset_name + " needs --dataset-path");
  }
  if (o.dataset_name == "random") {
    w = LoadRandom(o);
  } else if (o.dataset_name == "sharegpt") {
    w = LoadShareGpt(o.dataset_path, o);
  } else if (o.dataset_name == "custom") {
    w = LoadCustom(o.dataset_path, o);
  } else if (o.dataset_name == "trace") {
    w = LoadTrace(o.dataset_path, o);
  } else if (o.dataset_name == "synthetic") {
    w = GenerateSynthetic(o);
  } else if (o.dataset_name == "multi-turn") {
    w = GenerateMultiTurn(o);
  }
  if (!w.ok()) return w;
  if (w->requests.empty()) {
    return InvalidArgumentError("--dataset-name " + o.dataset_name +
                                (o.dataset_path.empty() ? "" : " (" + o.dataset_path + ")") + " gave no request" +
                                (w->skipped ? " (" + std::to_string(w->skipped) + " entries filtered out)" : ""));
  }
  w->clipped = ClipToModelLen(&w->requests, o.max_model_len);
  return w;
}

}  // namespace tandem::loadgen
