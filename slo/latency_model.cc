#include "slo/latency_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "common/file_io.h"
#include "slo/least_squares.h"

namespace tandem {
namespace {

constexpr const char* kFormat = "tandem-latency-profile";
constexpr int kVersion = 1;

// Two regimes may disagree by at most this fraction of the measured time at the samples on
// either side of their boundary.
constexpr double kMaxBoundaryJump = 0.25;

// One sample of any phase: its size (what regimes split on), its regressors and its time.
struct Row {
  int64_t size = 0;
  std::vector<double> x;
  double us = 0;
};

// A fitted regime: sizes up to max_size (0: any) and its coefficients.
struct Fitted {
  int64_t max_size = 0;
  std::vector<double> coefficients;
};

double Predict(const std::vector<double>& c, const std::vector<double>& x) {
  double t = 0;
  for (size_t i = 0; i < c.size(); ++i) t += c[i] * x[i];
  return t;
}

Result<std::vector<double>> FitRows(std::span<const Row> rows) {
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  for (const Row& r : rows) {
    x.push_back(r.x);
    y.push_back(r.us);
  }
  return FitNonNegativeRelative(x, y);
}

double SquaredRelativeError(const std::vector<double>& c, std::span<const Row> rows) {
  double e = 0;
  for (const Row& r : rows) {
    const double rel = (Predict(c, r.x) - r.us) / r.us;
    e += rel * rel;
  }
  return e;
}

Result<std::vector<Fitted>> FitRegimes(std::vector<Row> rows) {
  if (rows.empty()) return InvalidArgumentError("no samples");
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.size < b.size; });
  ASSIGN_OR_RETURN(std::vector<double> one, FitRows(rows));
  std::vector<Fitted> best = {{0, one}};
  // Two regimes always fit at least as well as one; they must earn their extra coefficients (k
  // more, and the split point) by the Bayesian information criterion: n·ln(E1/E2) > (k+1)·ln(n).
  const double n = static_cast<double>(rows.size());
  const double one_error = SquaredRelativeError(one, rows);
  double best_error = one_error * std::exp(-static_cast<double>(rows[0].x.size() + 1) * std::log(n) / n);
  const size_t min_side = rows[0].x.size() + 2;
  for (size_t i = min_side; i + min_side <= rows.size(); ++i) {
    if (rows[i].size == rows[i - 1].size) continue;
    std::span<const Row> low(rows.data(), i), high(rows.data() + i, rows.size() - i);
    auto lo = FitRows(low);
    auto hi = FitRows(high);
    if (!lo.ok() || !hi.ok()) continue;
    // The regimes must nearly meet where they join: a jump at the boundary is noise fitted on
    // one side, and would make a larger step look cheaper than a smaller one.
    bool continuous = true;
    for (const Row* r : {&rows[i - 1], &rows[i]}) {
      continuous = continuous && std::abs(Predict(*lo, r->x) - Predict(*hi, r->x)) <= kMaxBoundaryJump * r->us;
    }
    if (!continuous) continue;
    const double error = SquaredRelativeError(*lo, low) + SquaredRelativeError(*hi, high);
    if (error < best_error) {
      best_error = error;
      best = {{rows[i - 1].size, *lo}, {0, *hi}};
    }
  }
  return best;
}

template <typename Regime, typename SizeOf>
const Regime& RegimeFor(const std::vector<Regime>& regimes, int64_t size, SizeOf max_size) {
  for (const Regime& r : regimes) {
    if (max_size(r) == 0 || size <= static_cast<int64_t>(max_size(r))) return r;
  }
  return regimes.back();
}

Status Require(const nlohmann::json& j, const char* field, const std::string& where) {
  if (!j.contains(field) || !j[field].is_number() || !std::isfinite(j[field].get<double>()) ||
      j[field].get<double>() < 0) {
    return InvalidArgumentError(where + "." + field + " must be a non-negative number");
  }
  return Status::Ok();
}

}  // namespace

double LatencyProfile::PrefillUs(const PrefillWork& work) const {
  if (work.tokens <= 0 || prefill.empty()) return 0;
  const PrefillRegime& r = RegimeFor(prefill, work.tokens, [](const PrefillRegime& x) { return x.max_tokens; });
  return r.a_us + r.b_us_per_token * static_cast<double>(work.tokens) + r.c_us_per_pair * work.quadratic;
}

double LatencyProfile::PrefillUs(int64_t tokens) const {
  PrefillWork w;
  w.AddChunk(0, tokens);
  return PrefillUs(w);
}

double LatencyProfile::QueuedPrefillUs(const PrefillWork& work) const {
  if (work.tokens <= 0 || prefill.empty()) return 0;
  // Full steps of the budget, then the rest; the attention pairs spread evenly over the tokens.
  const int64_t budget = std::max<int32_t>(1, max_num_batched_tokens);
  const int64_t full_steps = work.tokens / budget;
  const int64_t rest = work.tokens % budget;
  const double pairs_per_token = work.quadratic / static_cast<double>(work.tokens);
  double us = 0;
  if (full_steps > 0) {
    PrefillWork step;
    step.tokens = budget;
    step.quadratic = pairs_per_token * static_cast<double>(budget);
    us += static_cast<double>(full_steps) * PrefillUs(step);
  }
  if (rest > 0) {
    PrefillWork step;
    step.tokens = rest;
    step.quadratic = pairs_per_token * static_cast<double>(rest);
    us += PrefillUs(step);
  }
  return us;
}

double LatencyProfile::DecodeStepUs(int32_t batch, int64_t context_tokens) const {
  if (batch <= 0 || decode.empty()) return 0;
  const DecodeRegime& r = RegimeFor(decode, batch, [](const DecodeRegime& x) { return x.max_batch; });
  return r.a_us + r.b_us_per_context_token * static_cast<double>(context_tokens) +
         r.c_us_per_sequence * static_cast<double>(batch);
}

double LatencyProfile::TransferBytesUs(uint64_t bytes) const {
  if (transfer.empty() || bytes == 0) return 0;
  const TransferRegime& r =
      RegimeFor(transfer, static_cast<int64_t>(bytes), [](const TransferRegime& x) { return x.max_bytes; });
  if (r.bytes_per_us <= 0) return 0;
  return num_layers * r.per_layer_us + static_cast<double>(bytes) / r.bytes_per_us;
}

double LatencyProfile::TransferUs(int64_t tokens) const {
  return tokens <= 0 ? 0 : TransferBytesUs(static_cast<uint64_t>(tokens * kv_bytes_per_token));
}

std::string LatencyProfile::ToJson() const {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["model"] = model;
  j["device"] = device;
  j["threads"] = threads;
  j["max_num_batched_tokens"] = max_num_batched_tokens;
  j["num_layers"] = num_layers;
  j["kv_bytes_per_token"] = kv_bytes_per_token;
  if (kv_cache_gib > 0) j["kv_cache_gib"] = kv_cache_gib;
  j["prefill"] = nlohmann::ordered_json::array();
  for (const PrefillRegime& r : prefill) {
    j["prefill"].push_back({{"max_tokens", r.max_tokens},
                            {"a_us", r.a_us},
                            {"b_us_per_token", r.b_us_per_token},
                            {"c_us_per_pair", r.c_us_per_pair}});
  }
  j["decode"] = nlohmann::ordered_json::array();
  for (const DecodeRegime& r : decode) {
    j["decode"].push_back({{"max_batch", r.max_batch},
                           {"a_us", r.a_us},
                           {"b_us_per_context_token", r.b_us_per_context_token},
                           {"c_us_per_sequence", r.c_us_per_sequence}});
  }
  j["transfer"] = nlohmann::ordered_json::array();
  for (const TransferRegime& r : transfer) {
    j["transfer"].push_back(
        {{"max_bytes", r.max_bytes}, {"per_layer_us", r.per_layer_us}, {"bytes_per_us", r.bytes_per_us}});
  }
  if (validation.samples > 0) {
    j["validation"] = {{"samples", validation.samples},
                       {"prefill_mape", validation.prefill_mape},
                       {"decode_mape", validation.decode_mape},
                       {"transfer_mape", validation.transfer_mape}};
  }
  return j.dump(2) + "\n";
}

namespace {

// A phase's regimes: an array of objects with `fields` (non-negative numbers; fields[0] is the
// size bound), ascending in that bound, the last unbounded (0). `required`: at least one.
Result<std::vector<std::vector<double>>> ParseRegimes(const nlohmann::json& j, const char* phase,
                                                      std::initializer_list<const char*> fields, bool required,
                                                      const std::string& source) {
  std::vector<std::vector<double>> out;
  const std::string where = source + " " + phase;
  if (!j.contains(phase)) {
    if (required) return InvalidArgumentError(source + ": missing \"" + phase + "\"");
    return out;
  }
  if (!j[phase].is_array() || (required && j[phase].empty())) {
    return InvalidArgumentError(source + ": \"" + phase + "\" must be a non-empty array of regimes");
  }
  for (const nlohmann::json& r : j[phase]) {
    if (!r.is_object()) return InvalidArgumentError(where + ": a regime is not an object");
    std::vector<double> values;
    for (const char* f : fields) {
      RETURN_IF_ERROR(Require(r, f, where));
      values.push_back(r[f].get<double>());
    }
    if (!out.empty() && (out.back()[0] == 0 || (values[0] != 0 && values[0] <= out.back()[0]))) {
      return InvalidArgumentError(where + ": regimes must ascend in " + *fields.begin() + ", the last with 0");
    }
    out.push_back(std::move(values));
  }
  if (!out.empty() && out.back()[0] != 0) {
    return InvalidArgumentError(where + ": the last regime needs " + *fields.begin() + " 0 (any size)");
  }
  return out;
}

}  // namespace

Result<LatencyProfile> ParseLatencyProfile(const std::string& text, const std::string& source) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  const std::string who = source + ": ";
  if (!j.is_object() || j.value("format", "") != kFormat) {
    return InvalidArgumentError(who + "not a latency profile (expected \"format\": \"" + kFormat +
                                "\"; `tandem profile` writes one)");
  }
  if (j.value("version", 0) != kVersion) {
    return InvalidArgumentError(who + "profile version " + j.value("version", nlohmann::json(0)).dump() +
                                " (this build reads version " + std::to_string(kVersion) + "; re-run tandem profile)");
  }
  LatencyProfile p;
  p.model = j.value("model", "");
  p.device = j.value("device", "");
  p.threads = j.value("threads", 0);
  p.max_num_batched_tokens = j.value("max_num_batched_tokens", 2048);
  if (p.max_num_batched_tokens <= 0) return InvalidArgumentError(who + "max_num_batched_tokens must be positive");
  RETURN_IF_ERROR(Require(j, "num_layers", source));
  RETURN_IF_ERROR(Require(j, "kv_bytes_per_token", source));
  p.num_layers = j["num_layers"].get<int32_t>();
  p.kv_bytes_per_token = j["kv_bytes_per_token"].get<int64_t>();
  p.kv_cache_gib = j.value("kv_cache_gib", 0.0);
  if (!(p.kv_cache_gib >= 0)) return InvalidArgumentError(who + "kv_cache_gib must not be negative");
  ASSIGN_OR_RETURN(auto prefill,
                   ParseRegimes(j, "prefill", {"max_tokens", "a_us", "b_us_per_token", "c_us_per_pair"}, true, source));
  for (const auto& v : prefill) p.prefill.push_back({static_cast<int64_t>(v[0]), v[1], v[2], v[3]});
  ASSIGN_OR_RETURN(
      auto decode,
      ParseRegimes(j, "decode", {"max_batch", "a_us", "b_us_per_context_token", "c_us_per_sequence"}, true, source));
  for (const auto& v : decode) p.decode.push_back({static_cast<int32_t>(v[0]), v[1], v[2], v[3]});
  ASSIGN_OR_RETURN(auto transfer,
                   ParseRegimes(j, "transfer", {"max_bytes", "per_layer_us", "bytes_per_us"}, false, source));
  for (const auto& v : transfer) p.transfer.push_back({static_cast<uint64_t>(v[0]), v[1], v[2]});
  if (j.contains("validation") && j["validation"].is_object()) {
    const nlohmann::json& v = j["validation"];
    p.validation = {v.value("samples", 0), v.value("prefill_mape", -1.0), v.value("decode_mape", -1.0),
                    v.value("transfer_mape", -1.0)};
  }
  return p;
}

Result<LatencyProfile> LoadLatencyProfile(const std::string& path) {
  auto text = ReadTextFile(path);
  if (!text.ok()) return text.status().WithContext("latency profile");
  return ParseLatencyProfile(*text, path);
}

Result<std::vector<PrefillRegime>> FitPrefill(std::span<const PrefillSample> samples) {
  std::vector<Row> rows;
  for (const PrefillSample& s : samples) {
    rows.push_back({s.work.tokens, {1.0, static_cast<double>(s.work.tokens), s.work.quadratic}, s.us});
  }
  auto fitted = FitRegimes(std::move(rows));
  if (!fitted.ok()) return fitted.status().WithContext("prefill fit");
  std::vector<PrefillRegime> out;
  for (const Fitted& f : *fitted) out.push_back({f.max_size, f.coefficients[0], f.coefficients[1], f.coefficients[2]});
  return out;
}

Result<std::vector<DecodeRegime>> FitDecode(std::span<const DecodeSample> samples) {
  std::vector<Row> rows;
  for (const DecodeSample& s : samples) {
    rows.push_back({s.batch, {1.0, static_cast<double>(s.context_tokens), static_cast<double>(s.batch)}, s.us});
  }
  auto fitted = FitRegimes(std::move(rows));
  if (!fitted.ok()) return fitted.status().WithContext("decode fit");
  std::vector<DecodeRegime> out;
  for (const Fitted& f : *fitted) {
    out.push_back({static_cast<int32_t>(f.max_size), f.coefficients[0], f.coefficients[1], f.coefficients[2]});
  }
  return out;
}

Result<std::vector<TransferRegime>> FitTransfer(std::span<const TransferSample> samples) {
  std::vector<Row> rows;
  for (const TransferSample& s : samples) {
    rows.push_back(
        {static_cast<int64_t>(s.bytes), {static_cast<double>(s.layers), static_cast<double>(s.bytes)}, s.us});
  }
  auto fitted = FitRegimes(std::move(rows));
  if (!fitted.ok()) return fitted.status().WithContext("transfer fit");
  std::vector<TransferRegime> out;
  for (const Fitted& f : *fitted) {
    if (f.coefficients[1] <= 0) return FailedPreconditionError("transfer fit: time does not grow with bytes");
    out.push_back({static_cast<uint64_t>(f.max_size), f.coefficients[0], 1.0 / f.coefficients[1]});
  }
  return out;
}

void LatencyCorrection::Observe(double predicted_us, double measured_us) {
  if (!(predicted_us > 0) || !(measured_us > 0)) return;
  const double ratio = measured_us / predicted_us;
  factor_ = (1 - weight_) * factor_ + weight_ * ratio;
  ++observations_;
}

}  // namespace tandem
