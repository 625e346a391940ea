#include "scheduler/slo_placement_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace tandem {
namespace {

// A request's expected output when it only gives a ceiling: max_tokens is often the whole
// window, and the model of its context only needs its mid-life size.
constexpr int32_t kExpectedOutputCap = 512;

// A node's own correction of the profile (measured / predicted, from its load reports); 1 when it
// runs without one.
double Correction(const NodeView& n) { return n.load.latency_factor > 0 ? n.load.latency_factor : 1.0; }

double Headroom(double target_ms, double predicted_ms) { return (target_ms - predicted_ms) / target_ms; }

std::string Ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f ms", ms);
  return buf;
}

}  // namespace

Result<AdmissionMode> ParseAdmissionMode(std::string_view name) {
  if (name == "queue") return AdmissionMode::kQueue;
  if (name == "slo") return AdmissionMode::kSlo;
  return InvalidArgumentError("unknown admission mode '" + std::string(name) + "' (known: queue, slo)");
}

std::string_view AdmissionModeName(AdmissionMode mode) { return mode == AdmissionMode::kSlo ? "slo" : "queue"; }

SloPlacementPolicy::SloPlacementPolicy(LatencyProfile profile, AdmissionMode admission)
    : profile_(std::move(profile)), admission_(admission) {}

SloPrediction SloPlacementPolicy::Predict(const PlacementRequest& request, const NodeView& p, const NodeView& d) const {
  SloPrediction out;
  const int64_t l = request.prompt_tokens;
  // P runs its queue by TTFT deadline: only prompts due no later than this one are ahead of it.
  PrefillWork work;
  const int64_t deadline = TtftDeadlineUs(request.arrival_us, request.slo.ttft_ms);
  for (auto it = p.placed.prefill_queue.begin(); it != p.placed.prefill_queue.end() && it->first <= deadline; ++it) {
    work.AddChunk(0, it->second);
  }
  // Its own prompt, less what P's prefix cache holds (attended to, not computed).
  const int64_t cached = request.CachedTokensOn(p);
  work.AddChunk(cached, l - cached);
  double ttft_us =
      static_cast<double>(std::max<int64_t>(0, request.waited_us)) + profile_.QueuedPrefillUs(work) * Correction(p);
  const bool colocated = &p == &d;
  if (!colocated && profile_.num_layers > 0) ttft_us += profile_.TransferUs(l) / profile_.num_layers;

  const int32_t batch = d.placed.decode_requests + 1;
  const int64_t expected_output = std::min(std::max(request.max_tokens, 1), kExpectedOutputCap);
  const int64_t context = d.placed.decode_context_tokens + l + expected_output / 2;
  const double step_us = profile_.DecodeStepUs(batch, context) * Correction(d);
  if (!colocated) ttft_us += step_us;  // the first token goes out with D's first step
  out.ttft_ms = ttft_us / 1000.0;
  out.tpot_ms = step_us / 1000.0;

  out.headroom = 1.0;
  if (request.slo.ttft_ms > 0) {
    out.ttft_met = out.ttft_ms <= request.slo.ttft_ms;
    out.headroom = std::min(out.headroom, Headroom(request.slo.ttft_ms, out.ttft_ms));
  }
  for (double target : {request.slo.tpot_ms, d.placed.tightest_tpot_ms()}) {
    if (target <= 0) continue;
    out.tpot_met = out.tpot_met && out.tpot_ms <= target;
    out.headroom = std::min(out.headroom, Headroom(target, out.tpot_ms));
  }
  return out;
}

PlacementDecision SloPlacementPolicy::Place(const PlacementRequest& request, const PlacementContext& ctx) const {
  PlacementCandidates c;
  if (auto end = GatherCandidates(request, ctx, &c)) return *end;
  const auto node = [&](NodeIndex i) -> const NodeView& { return ctx.nodes[static_cast<size_t>(i)]; };

  struct Choice {
    NodeIndex p = -1, d = -1;
    SloPrediction prediction;
  };
  // Higher headroom first; equal headroom (no targets, or a tie) goes to the less loaded pair,
  // then the lower ids, so the choice does not depend on the order of the candidates.
  const auto better = [&](const Choice& a, const Choice& b) {
    if (b.p < 0) return true;
    if (a.prediction.headroom != b.prediction.headroom) return a.prediction.headroom > b.prediction.headroom;
    if (a.prediction.ttft_ms != b.prediction.ttft_ms) return a.prediction.ttft_ms < b.prediction.ttft_ms;
    if (node(a.p).id != node(b.p).id) return node(a.p).id < node(b.p).id;
    return node(a.d).id < node(b.d).id;
  };
  Choice best_met, best_any, best_ttft;
  bool any_pair = false;
  for (NodeIndex p : c.prefill) {
    for (NodeIndex d : c.decode) {
      if (!ctx.Reaches(p, d)) continue;
      any_pair = true;
      if (BlocksNeeded(request, node(d)) > node(d).free_blocks()) continue;
      const Choice choice{p, d, Predict(request, node(p), node(d))};
      if (choice.prediction.met() && better(choice, best_met)) best_met = choice;
      if (choice.prediction.ttft_met && better(choice, best_ttft)) best_ttft = choice;
      if (better(choice, best_any)) best_any = choice;
    }
  }
  if (best_met.p >= 0) return PlacementDecision::Place(best_met.p, best_met.d);
  if (best_any.p < 0) return NoRoomDecision(request, c, any_pair);
  if (admission_ == AdmissionMode::kQueue) return PlacementDecision::Place(best_any.p, best_any.d);
  if (best_ttft.p < 0) {
    return PlacementDecision::Reject(ResourceExhaustedError("no node can meet the request's TTFT target of " +
                                                            Ms(request.slo.ttft_ms) + " (predicted " +
                                                            Ms(best_any.prediction.ttft_ms) + " at best); retry later")
                                         .WithReason(kSloUnattainable));
  }
  return PlacementDecision::Defer(
      ResourceExhaustedError("every decode batch that could take the request would miss a TPOT target (predicted " +
                             Ms(best_ttft.prediction.tpot_ms) + " at best)"));
}

}  // namespace tandem
