// `tandem profile`: measures this model's prefill steps, decode steps and KV transfers on this
// device, fits the latency model (slo/latency_model.h) and writes it as JSON for the nodes, the
// router and the simulator. --validate measures random held-out shapes as well and prints the
// fit's mean absolute percentage error per phase; with --profile it checks an existing profile
// on this machine instead of fitting a new one. --synthetic derives a profile for hardware we do
// not have from its peak numbers (sim/roofline_profile.h), without running anything.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "apps/command.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "node/latency_profiler.h"
#include "sim/roofline_profile.h"

namespace tandem {
namespace {

struct ProfileArgs {
  std::string model;
  std::string device = "cpu";
  int threads = 0;
  std::string out;
  std::string existing;
  std::string samples_out;
  bool validate = false;
  bool no_transfer = false;
  ProfilerOptions options;
  bool synthetic = false;
  RooflineHardware hardware;
};

void PrintProfile(const LatencyProfile& p) {
  for (const PrefillRegime& r : p.prefill) {
    const std::string range = r.max_tokens ? "<= " + std::to_string(r.max_tokens) + " tokens" : "any size";
    std::printf("prefill step   %.0f us + %.2f us/token + %.3g us/(query-key pair)  (%s)\n", r.a_us, r.b_us_per_token,
                r.c_us_per_pair, range.c_str());
  }
  for (const DecodeRegime& r : p.decode) {
    const std::string range = r.max_batch ? "batch <= " + std::to_string(r.max_batch) : "any batch";
    std::printf("decode step    %.0f us + %.3f us/context token + %.1f us/sequence  (%s)\n", r.a_us,
                r.b_us_per_context_token, r.c_us_per_sequence, range.c_str());
  }
  for (const TransferRegime& r : p.transfer) {
    const std::string range = r.max_bytes ? "<= " + std::to_string(r.max_bytes >> 10) + " KiB" : "any size";
    std::printf("KV transfer    %.1f us/layer + bytes at %.2f GB/s  (%s; %lld bytes/token)\n", r.per_layer_us,
                r.bytes_per_us / 1e3, range.c_str(), static_cast<long long>(p.kv_bytes_per_token));
  }
}

// Every measured shape with the profile's prediction, for plots and for finding what the model
// misses: phase,set,sequences,tokens,quadratic_or_bytes,measured_us,predicted_us.
void AppendSamples(std::string* csv, const char* set, const ProfileSamples& s, const LatencyProfile& p) {
  char line[256];
  for (const PrefillSample& x : s.prefill) {
    std::snprintf(line, sizeof(line), "prefill,%s,,%lld,%.0f,%.1f,%.1f\n", set, static_cast<long long>(x.work.tokens),
                  x.work.quadratic, x.us, p.PrefillUs(x.work));
    *csv += line;
  }
  for (const DecodeSample& x : s.decode) {
    std::snprintf(line, sizeof(line), "decode,%s,%d,%lld,,%.1f,%.1f\n", set, x.batch,
                  static_cast<long long>(x.context_tokens), x.us, p.DecodeStepUs(x.batch, x.context_tokens));
    *csv += line;
  }
  for (const TransferSample& x : s.transfer) {
    std::snprintf(line, sizeof(line), "transfer,%s,,,%llu,%.1f,%.1f\n", set, static_cast<unsigned long long>(x.bytes),
                  x.us, p.TransferBytesUs(x.bytes));
    *csv += line;
  }
}

void PrintValidation(const ProfileValidation& v) {
  auto phase = [](const char* name, double mape) {
    if (mape >= 0) std::printf("  %-9s MAPE %5.2f%%%s\n", name, mape, mape <= 5.0 ? "" : "  (goal <= 5%)");
  };
  std::printf("held-out validation (%d shapes):\n", v.samples);
  phase("prefill", v.prefill_mape);
  phase("decode", v.decode_mape);
  phase("transfer", v.transfer_mape);
}

Status RunSynthetic(const ProfileArgs& args) {
  if (args.out.empty()) return InvalidArgumentError("--out is required");
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(args.model));
  ASSIGN_OR_RETURN(LatencyProfile profile, RooflineProfile(config, args.hardware));
  profile.model = std::filesystem::path(args.model).lexically_normal().filename().string();
  std::printf("derived, not measured: %s, %.2fB parameters\n", profile.device.c_str(), config.NumParameters() / 1e9);
  PrintProfile(profile);
  if (profile.kv_cache_gib > 0) {
    std::printf("KV pool        %.1f GiB per instance (%.0fk tokens)\n", profile.kv_cache_gib,
                profile.kv_cache_gib * (1ull << 30) / static_cast<double>(profile.kv_bytes_per_token) / 1e3);
  }
  RETURN_IF_ERROR(WriteTextFile(args.out, profile.ToJson()));
  std::printf("wrote %s\n", args.out.c_str());
  return Status::Ok();
}

Status RunProfile(ProfileArgs& args) {
  if (args.synthetic) return RunSynthetic(args);
  if (args.existing.empty() && args.out.empty())
    return InvalidArgumentError("--out is required (or --profile to validate one)");
  BackendOptions bo;
  bo.num_threads = args.threads;
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(args.device, bo));
  ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights, LoadModelWeights(args.model, *backend));
  args.options.measure_transfer = !args.no_transfer;
  args.options.progress = [](const std::string& line) { std::fprintf(stderr, "profile: %s\n", line.c_str()); };
  const ModelConfig& config = weights->config;

  LatencyProfile profile;
  std::string csv = "phase,set,sequences,tokens,quadratic_or_bytes,measured_us,predicted_us\n";
  if (!args.existing.empty()) {
    ASSIGN_OR_RETURN(profile, LoadLatencyProfile(args.existing));
    args.validate = true;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<LatencyProfiler> profiler,
                   LatencyProfiler::Create(*backend, *weights, args.options));
  ProfileSamples held_out;
  const ProfileShapes held_out_shapes = args.validate ? HeldOutShapes(config, args.options) : ProfileShapes{};
  if (!args.existing.empty()) {
    ASSIGN_OR_RETURN(held_out, profiler->Measure(held_out_shapes));
  } else {
    // The held-out shapes run interleaved with the grid, under the same machine conditions.
    ASSIGN_OR_RETURN(auto both, profiler->MeasureInterleaved(GridShapes(config, args.options), held_out_shapes));
    ProfileSamples& grid = both.first;
    held_out = std::move(both.second);
    ASSIGN_OR_RETURN(profile, FitProfile(config, backend->kv_cache_dtype(), grid));
    profile.model = std::filesystem::path(args.model).filename().string();
    profile.device = args.device;
    profile.threads = args.threads;
    profile.max_num_batched_tokens = args.options.max_num_batched_tokens;
    const ProfileValidation fit = ValidateProfile(profile, grid);
    AppendSamples(&csv, "fit", grid, profile);
    std::printf("fit on %zu prefill, %zu decode, %zu transfer shapes; training MAPE %.2f%% / %.2f%% / %.2f%%\n",
                grid.prefill.size(), grid.decode.size(), grid.transfer.size(), fit.prefill_mape, fit.decode_mape,
                std::max(0.0, fit.transfer_mape));
  }
  PrintProfile(profile);
  if (args.validate) {
    profile.validation = ValidateProfile(profile, held_out);
    AppendSamples(&csv, "held-out", held_out, profile);
    PrintValidation(profile.validation);
  }
  if (!args.samples_out.empty()) RETURN_IF_ERROR(WriteTextFile(args.samples_out, csv));
  if (!args.out.empty()) {
    RETURN_IF_ERROR(WriteTextFile(args.out, profile.ToJson()));
    std::printf("wrote %s\n", args.out.c_str());
  }
  return Status::Ok();
}

std::pair<CLI::App*, CommandRunner> SetupProfile(CLI::App& app) {
  auto args = std::make_shared<ProfileArgs>();
  auto* sub = app.add_subcommand("profile", "Measure this model's step and transfer times and fit the latency model");
  sub->add_option("--model", args->model, "Hugging Face model directory")->required();
  sub->add_option("--device", args->device, "cpu or cuda")->capture_default_str();
  sub->add_option("--threads", args->threads, "CPU threads (0: all cores; use the nodes' setting)")
      ->capture_default_str();
  sub->add_option("--out", args->out, "Write the fitted profile here (JSON)");
  sub->add_flag("--validate", args->validate, "Also measure random held-out shapes and print the error per phase");
  sub->add_option("--profile", args->existing, "Validate this existing profile instead of fitting one")
      ->check(CLI::ExistingFile);
  sub->add_option("--repeats", args->options.repeats, "Timed runs per shape (the median counts)")
      ->capture_default_str();
  sub->add_option("--max-num-batched-tokens", args->options.max_num_batched_tokens, "Largest prefill step")
      ->capture_default_str();
  sub->add_option("--max-num-seqs", args->options.max_num_seqs, "Largest decode batch")->capture_default_str();
  sub->add_option("--max-context", args->options.max_context, "Longest context per sequence")->capture_default_str();
  sub->add_option("--held-out", args->options.held_out, "Held-out shapes per phase for --validate")
      ->capture_default_str();
  sub->add_option("--seed", args->options.seed, "Seed of the held-out shapes")->capture_default_str();
  sub->add_option("--samples-out", args->samples_out, "Also write every measured shape with its prediction (CSV)");
  sub->add_flag("--no-transfer", args->no_transfer, "Skip the KV transfer phase (a colocated deployment)");
  sub->add_flag("--synthetic", args->synthetic,
                "Derive the profile from peak hardware numbers (roofline) instead of measuring: needs only "
                "the model's config.json");
  RooflineHardware& hw = args->hardware;
  sub->add_option("--flops", hw.tflops, "--synthetic: dense 16-bit peak per device, TFLOP/s (H100 SXM: 989)");
  sub->add_option("--mem-bw", hw.mem_gbps, "--synthetic: memory bandwidth per device, GB/s (H100 SXM: 3350)");
  sub->add_option("--link-bw", hw.link_gbps, "--synthetic: KV transfer link between instances, GB/s");
  sub->add_option("--interconnect-bw", hw.interconnect_gbps,
                  "--synthetic: tensor-parallel all-reduce bandwidth per device, GB/s (NVLink 4: 450)");
  sub->add_option("--tp", hw.tp, "--synthetic: devices per instance (tensor parallel)")->capture_default_str();
  sub->add_option("--mfu", hw.mfu, "--synthetic: achieved fraction of peak compute")->capture_default_str();
  sub->add_option("--bandwidth-efficiency", hw.bandwidth_efficiency,
                  "--synthetic: achieved fraction of peak memory bandwidth")
      ->capture_default_str();
  sub->add_option("--mem-gib", hw.mem_gib,
                  "--synthetic: device memory per device, GiB (H100 SXM: 80); sets the profile's KV pool");
  sub->add_option("--gpu-memory-utilization", hw.memory_utilization,
                  "--synthetic: share of device memory for weights and KV")
      ->capture_default_str();
  sub->add_option("--hardware-name", hw.name, "--synthetic: what to call the device in the profile");
  return {sub, [args] {
            Status s = RunProfile(*args);
            return s.ok() ? 0 : ReportError(s);
          }};
}

TANDEM_REGISTER_COMMAND(SetupProfile);

}  // namespace
}  // namespace tandem
