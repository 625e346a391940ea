// `tandem generate`: single-process generation, the reference that disaggregated serving must
// reproduce token for token.
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/command.h"
#include "apps/prompt_input.h"
#include "common/logging.h"
#include "engine/engine.h"
#include "kernels/backend.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"
#include "model/transformer.h"

namespace tandem {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  std::string device = "cpu";
  int threads = 0;
  bool print_ids = false;
  bool chat = false;
  SamplingParams params;
  uint64_t seed = 0;
  std::vector<int32_t> stop_token_ids;
};

Status RunGenerate(const GenerateArgs& args) {
  BackendOptions backend_options;
  backend_options.num_threads = args.threads;
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(args.device, backend_options));
  ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights, LoadModelWeights(args.model, *backend));
  ASSIGN_OR_RETURN(PromptInput input, PreparePrompt(args.model, args.prompt, args.prompt_ids, args.chat));

  Request request;
  request.id = 1;
  request.prompt = input.ids;
  request.params = args.params;
  request.params.seed = args.seed;
  request.params.stop_token_ids = args.stop_token_ids;

  KvCacheOptions kv_options;
  kv_options.num_blocks =
      KvBlocksForRequest(static_cast<int64_t>(request.prompt.size()), request.params.max_tokens, kv_options.block_size);
  ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, KvCache::Create(*backend, weights->config, kv_options));
  ASSIGN_OR_RETURN(std::unique_ptr<Transformer> transformer, Transformer::Create(*backend, *weights));
  Engine engine(*transformer, *cache, EngineOptions{});
  RETURN_IF_ERROR(engine.Add(std::move(request)));

  std::unique_ptr<TextStreamer> streamer;
  if (!args.print_ids) {
    ASSIGN_OR_RETURN(streamer, input.MakeStreamer());
  }
  bool first = true;
  while (engine.HasWork()) {
    ASSIGN_OR_RETURN(std::vector<StepOutput> outputs, engine.Step());
    for (const StepOutput& out : outputs) {
      if (out.finish_reason == FinishReason::kError) return out.status;
      if (out.token < 0) continue;
      if (args.print_ids) {
        std::cout << (first ? "" : " ") << out.token;
      } else {
        std::cout << streamer->Add(out.token);
      }
      first = false;
      std::cout.flush();
    }
  }
  if (!args.print_ids) std::cout << streamer->Finish();
  std::cout << std::endl;

  std::unique_ptr<Request> done = engine.TakeFinished(1);
  if (!done) return InternalError("request 1 finished without a record");
  const RequestRecord& rec = done->record;
  const size_t n = done->output.size();
  const double decode_s = n > 1 ? (rec.last_token_us - rec.first_token_us) / 1e6 : 0.0;
  std::fprintf(stderr, "prompt tokens: %zu, generated tokens: %zu, finish: %s\n", done->prompt.size(), n,
               std::string(FinishReasonName(done->finish_reason)).c_str());
  std::fprintf(stderr, "TTFT: %.2f ms, decode: %.1f tokens/s\n", rec.ttft_ms(),
               decode_s > 0 ? (n - 1) / decode_s : 0.0);
  return Status::Ok();
}

std::pair<CLI::App*, CommandRunner> SetupGenerate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* sub = app.add_subcommand("generate", "Generate from a prompt in this process (reference path)");
  sub->add_option("--model", args->model, "Hugging Face model directory")->required();
  auto* prompt = sub->add_option("--prompt", args->prompt, "Prompt text (tokenized with the model's tokenizer)");
  auto* ids = sub->add_option("--prompt-ids", args->prompt_ids, "Prompt token ids, comma-separated");
  prompt->excludes(ids);
  sub->add_flag("--chat", args->chat, "Wrap --prompt as one user message with the chat template");
  sub->add_option("--max-tokens", args->params.max_tokens, "Tokens to generate")->capture_default_str();
  sub->add_option("--temperature", args->params.temperature, "0 for greedy")->capture_default_str();
  sub->add_option("--top-p", args->params.top_p)->capture_default_str();
  sub->add_option("--top-k", args->params.top_k, "0 or -1: off")->capture_default_str();
  sub->add_option("--min-p", args->params.min_p)->capture_default_str();
  sub->add_option("--repetition-penalty", args->params.repetition_penalty)->capture_default_str();
  sub->add_option("--presence-penalty", args->params.presence_penalty)->capture_default_str();
  sub->add_option("--frequency-penalty", args->params.frequency_penalty)->capture_default_str();
  sub->add_option("--seed", args->seed, "Sampling seed")->capture_default_str();
  sub->add_option("--stop-token-ids", args->stop_token_ids, "Extra stop token ids")->delimiter(',');
  sub->add_flag("--ignore-eos", args->params.ignore_eos, "Do not stop at EOS");
  sub->add_flag("--print-ids", args->print_ids, "Print generated token ids instead of text");
  sub->add_option("--device", args->device, "cpu or cuda")->capture_default_str();
  sub->add_option("--threads", args->threads, "CPU threads (0: all cores)")->capture_default_str();
  return {sub, [args] {
            if (args->prompt.empty() && args->prompt_ids.empty()) {
              return ReportError(InvalidArgumentError("one of --prompt or --prompt-ids is required"));
            }
            Status s = RunGenerate(*args);
            return s.ok() ? 0 : ReportError(s);
          }};
}

TANDEM_REGISTER_COMMAND(SetupGenerate);

}  // namespace
}  // namespace tandem
