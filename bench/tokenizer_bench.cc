// Single-thread encode throughput of the tokenizer.json tokenizer (tokenizer/).
//
// Text: the fixture corpus (tests/data/tokenizers/corpus.json) joined with "\n" and repeated to
// --mb megabytes, or the files given with --input. It is cut into chunks of whole lines of at
// least 4096 bytes, each encoded with Encode(chunk, add_special_tokens=true).
// tools/bench_tokenizers_ref.py builds the same chunks and times the reference `tokenizers`.
// Validates first (every chunk encodes; decode(encode(chunk)) round trips are counted), then
// times: one warm-up pass, best of --repeat passes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Chunks(const std::string& text, size_t min_bytes) {
  std::vector<std::string> chunks;
  std::string cur;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string::npos ? text.size() : nl + 1;
    cur.append(text, pos, end - pos);
    pos = end;
    if (cur.size() >= min_bytes) {
      chunks.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) chunks.push_back(std::move(cur));
  return chunks;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Tokenizer encode throughput (one thread)");
  const fs::path repo = fs::path(__FILE__).parent_path().parent_path();
  std::vector<std::string> tokenizers = {
      "llama2=/work/shared/data/tokenizers/llama2/tokenizer.json",
      "qwen3=/work/shared/data/tokenizers/qwen3/tokenizer.json",
      "tandem-bpe8k=" + (repo / "model/assets/tokenizer.json").string()};
  std::vector<std::string> inputs;
  double mb = 4.0;
  int repeat = 3;
  std::string json_out;
  app.add_option("--tokenizer", tokenizers, "NAME=PATH/tokenizer.json (repeatable)");
  app.add_option("--input", inputs, "Text files to encode instead of the repeated corpus");
  app.add_option("--mb", mb, "Megabytes of repeated corpus text");
  app.add_option("--repeat", repeat, "Timed passes (best is reported)");
  app.add_option("--json", json_out, "Write results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  std::string text;
  if (inputs.empty()) {
    const auto corpus = nlohmann::json::parse(ReadFile((repo / "tests/data/tokenizers/corpus.json").string()));
    std::string once;
    for (const auto& s : corpus["strings"]) once += s.get<std::string>() + "\n";
    while (text.size() < static_cast<size_t>(mb * 1e6)) text += once;
  } else {
    for (const auto& f : inputs) text += ReadFile(f);
  }
  const std::vector<std::string> chunks = Chunks(text, 4096);
  std::printf("text: %.2f MB in %zu chunks (%s)\n", text.size() / 1e6, chunks.size(),
              inputs.empty() ? "repeated fixture corpus" : "input files");

  nlohmann::json results = nlohmann::json::array();
  std::printf("%-14s %10s %12s %10s %s\n", "tokenizer", "MB/s", "tokens/s", "tokens", "lossless-chunks");
  for (const std::string& spec : tokenizers) {
    const size_t eq = spec.find('=');
    const std::string name = spec.substr(0, eq), path = spec.substr(eq + 1);
    if (!fs::exists(path)) {
      std::printf("%-14s skipped: %s not found\n", name.c_str(), path.c_str());
      continue;
    }
    auto tok = tandem::Tokenizer::FromFile(path);
    if (!tok.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), tok.status().ToString().c_str());
      return 1;
    }
    // Validate: every chunk encodes; count lossless round trips (Llama's decoder strips the
    // first space, so not every chunk round-trips there).
    size_t tokens = 0, round_trips = 0;
    for (const std::string& c : chunks) {
      auto ids = (*tok)->Encode(c, true);
      if (!ids.ok()) {
        std::fprintf(stderr, "%s: encode failed: %s\n", name.c_str(), ids.status().ToString().c_str());
        return 1;
      }
      tokens += ids->size();
      auto plain = (*tok)->Encode(c, false);
      round_trips += plain.ok() && (*tok)->Decode(*plain, false) == c;
    }
    double best = 1e30;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      size_t n = 0;
      for (const std::string& c : chunks) n += (*tok)->Encode(c, true)->size();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (n != tokens) {
        std::fprintf(stderr, "%s: non-deterministic token count\n", name.c_str());
        return 1;
      }
      best = std::min(best, s);
    }
    const double mbps = text.size() / 1e6 / best;
    std::printf("%-14s %10.2f %12.0f %10zu %zu/%zu\n", name.c_str(), mbps, tokens / best, tokens,
                round_trips, chunks.size());
    results.push_back({{"tokenizer", name}, {"mb_per_s", mbps}, {"tokens_per_s", tokens / best},
                       {"tokens", tokens}, {"bytes", text.size()}, {"threads", 1}});
  }
  if (!json_out.empty()) std::ofstream(json_out) << results.dump(1) << "\n";
  return 0;
}
