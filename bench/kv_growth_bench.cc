// Decode batch size at equal KV memory: the engine's real Scheduler with KV reserved up front
// (kReserve: prompt + max_tokens at admission) against KV that grows with preemption and
// recompute (kGrow), on a chatbot workload whose max_tokens is generous (a chat request without
// max_tokens asks for the rest of the context window) while the answers end earlier (EOS).
//
// No model runs: each step's sampled tokens come from the workload (EOS when a request's answer
// length is reached), so the numbers are the scheduler's own: sequences decoding per step, the
// steps needed to serve the workload, preemptions and recomputed tokens. With --profile (a
// `tandem profile` file) each step is also priced by the latency model (prefill part + decode
// part), giving an estimated makespan and throughput.
//
//   kv_growth_bench [--pool-blocks 512] [--requests 1000] [--max-tokens window|exact] [--profile P]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/scheduler.h"
#include "slo/latency_model.h"

namespace tandem {
namespace {

constexpr int64_t kEos = 2;
constexpr int32_t kToken = 7;

struct Args {
  int32_t pool_blocks = 512;
  int32_t block_size = 16;
  int32_t requests = 1000;
  int32_t context = 2048;
  int32_t max_num_seqs = 256;
  int32_t budget = 2048;
  double input_mean = 220;  // ShareGPT-like: lognormal lengths around these means
  double output_mean = 200;
  std::string max_tokens = "window";  // window: context - prompt; exact: the answer's length
  std::string profile;
  uint64_t seed = 1;
};

struct Job {
  int32_t prompt = 0;
  int32_t answer = 0;  // tokens until EOS (the EOS included)
};

std::vector<Job> Workload(const Args& a) {
  std::mt19937_64 rng(a.seed);
  // sigma 0.8: the spread of ShareGPT's turn lengths, roughly.
  const double sigma = 0.8;
  std::lognormal_distribution<double> in(std::log(a.input_mean) - sigma * sigma / 2, sigma);
  std::lognormal_distribution<double> out(std::log(a.output_mean) - sigma * sigma / 2, sigma);
  std::vector<Job> jobs;
  for (int i = 0; i < a.requests; ++i) {
    Job j;
    j.prompt = std::clamp(static_cast<int32_t>(in(rng)), 4, a.context / 2);
    j.answer = std::clamp(static_cast<int32_t>(out(rng)), 2, a.context - j.prompt);
    jobs.push_back(j);
  }
  return jobs;
}

struct Outcome {
  int64_t steps = 0;
  int64_t decode_tokens = 0;
  int32_t max_batch = 0;
  int64_t preemptions = 0;
  int64_t prefill_tokens = 0;  // prompts + recomputes
  double est_seconds = 0;      // with a profile
};

Outcome Run(const Args& a, const std::vector<Job>& jobs, KvAllocation allocation, const LatencyProfile* profile) {
  BlockPool pool(a.pool_blocks);
  RequestLimits limits;
  limits.vocab_size = 100;
  limits.context_window = a.context;
  limits.block_size = a.block_size;
  limits.pool_blocks = a.pool_blocks;
  SchedulerOptions o{EngineRole::kColocated, a.max_num_seqs, a.budget};
  o.kv_allocation = allocation;
  Scheduler sched(pool, a.block_size, limits, {kEos}, o);
  std::unordered_map<int64_t, int32_t> answer;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Request r;
    r.id = static_cast<int64_t>(i);
    r.prompt.assign(static_cast<size_t>(jobs[i].prompt), kToken);
    r.params.temperature = 0;
    r.params.max_tokens = a.max_tokens == "exact" ? jobs[i].answer : a.context - jobs[i].prompt;
    answer[r.id] = jobs[i].answer;
    Status s = sched.Add(std::move(r), 0);
    if (!s.ok()) {
      std::fprintf(stderr, "request %zu refused: %s\n", i, s.ToString().c_str());
      std::exit(1);
    }
  }
  Outcome out;
  for (int64_t now = 1; sched.HasWork(); ++now) {
    StepPlan plan = sched.Schedule(now);
    if (plan.empty()) {
      std::fprintf(stderr, "stalled with work left\n");
      std::exit(1);
    }
    StepResult result;
    int32_t batch = 0;
    for (const ScheduledChunk& c : plan.chunks) {
      if (c.decode) {
        ++batch;
      } else {
        out.prefill_tokens += c.num_tokens;
      }
      if (!c.want_logits) continue;
      const bool last = static_cast<int32_t>(c.request->output.size()) + 1 >= answer[c.request->id];
      result.tokens.push_back(last ? static_cast<int32_t>(kEos) : kToken);
    }
    if (profile != nullptr) {
      const StepShape shape = ShapeOf(plan);
      double us = 0;
      if (shape.prefill.tokens > 0) us += profile->PrefillUs(shape.prefill);
      if (shape.decode_batch > 0) us += profile->DecodeStepUs(shape.decode_batch, shape.decode_context);
      out.est_seconds += us / 1e6;
    }
    out.decode_tokens += batch;
    out.max_batch = std::max(out.max_batch, batch);
    ++out.steps;
    for (const StepOutput& s : sched.Postprocess(now, plan, result)) {
      if (s.finish_reason != FinishReason::kNone) sched.TakeFinished(s.request_id);
    }
  }
  out.preemptions = sched.num_preemptions();
  if (pool.num_free() != a.pool_blocks) {
    std::fprintf(stderr, "leaked %d blocks\n", a.pool_blocks - pool.num_free());
    std::exit(1);
  }
  return out;
}

int Main(int argc, char** argv) {
  Args a;
  CLI::App app("Decode batch size at equal KV memory: reserve vs grow (the real Scheduler, no model)");
  app.add_option("--pool-blocks", a.pool_blocks, "KV blocks (the equal memory)")->capture_default_str();
  app.add_option("--block-size", a.block_size)->capture_default_str();
  app.add_option("--requests", a.requests)->capture_default_str();
  app.add_option("--context", a.context, "context window")->capture_default_str();
  app.add_option("--max-num-seqs", a.max_num_seqs)->capture_default_str();
  app.add_option("--max-num-batched-tokens", a.budget)->capture_default_str();
  app.add_option("--input-mean", a.input_mean)->capture_default_str();
  app.add_option("--output-mean", a.output_mean)->capture_default_str();
  app.add_option("--max-tokens", a.max_tokens, "window: context - prompt (chat without max_tokens); exact")
      ->check(CLI::IsMember({"window", "exact"}))
      ->capture_default_str();
  app.add_option("--profile", a.profile, "latency profile (tandem profile) to price each step");
  app.add_option("--seed", a.seed)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::optional<LatencyProfile> profile;
  if (!a.profile.empty()) {
    Result<LatencyProfile> p = LoadLatencyProfile(a.profile);
    if (!p.ok()) {
      std::fprintf(stderr, "%s\n", p.status().ToString().c_str());
      return 1;
    }
    profile = std::move(p).value();
  }
  const std::vector<Job> jobs = Workload(a);
  int64_t answer_tokens = 0;
  for (const Job& j : jobs) answer_tokens += j.answer;
  std::printf("workload: %d requests, prompt mean %.0f, answer mean %.0f tokens, max_tokens %s; pool %d blocks of %d\n",
              a.requests, a.input_mean, a.output_mean, a.max_tokens.c_str(), a.pool_blocks, a.block_size);
  std::printf("%-8s %10s %12s %10s %12s %14s %12s\n", "kv", "steps", "mean batch", "max batch", "preemptions",
              "prefill tokens", "est. tok/s");
  Outcome base;
  for (KvAllocation alloc : {KvAllocation::kReserve, KvAllocation::kGrow}) {
    const Outcome o = Run(a, jobs, alloc, profile ? &*profile : nullptr);
    if (alloc == KvAllocation::kReserve) base = o;
    const double mean_batch = static_cast<double>(o.decode_tokens) / static_cast<double>(o.steps);
    std::printf("%-8s %10lld %12.1f %10d %12lld %14lld %12s\n", alloc == KvAllocation::kGrow ? "grow" : "reserve",
                static_cast<long long>(o.steps), mean_batch, o.max_batch, static_cast<long long>(o.preemptions),
                static_cast<long long>(o.prefill_tokens),
                profile ? std::to_string(static_cast<int64_t>(answer_tokens / o.est_seconds)).c_str() : "-");
    if (alloc == KvAllocation::kGrow) {
      std::printf(
          "grow / reserve: steps %.2fx, mean batch %.2fx", static_cast<double>(o.steps) / base.steps,
          (static_cast<double>(o.decode_tokens) / o.steps) / (static_cast<double>(base.decode_tokens) / base.steps));
      if (profile) std::printf(", est. throughput %.2fx", base.est_seconds / o.est_seconds);
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) { return tandem::Main(argc, argv); }
