// Placement by predicted SLO attainment (the goodput-aware policy). For every (P, D) a request
// may use, the latency model predicts
//   TTFT = time it already waited + P's placed prompts ahead of it (P runs its queue by TTFT
//          deadline: those due no later than this one) and its own prompt, worked
//          off in steps of the profile's token budget + the part of its KV transfer that is not
//          hidden behind compute (the last layer's share) + D's next decode step (the first
//          token reaches the client with D's first tokens)
//   TPOT = D's decode step with it admitted: one more sequence, and its context at mid-life
//          (prompt + half its expected output), for it and every member already there
// from the router's own record of what it placed (NodeView::placed, exact and never stale), each
// node's part scaled by the correction it reports (measured / predicted step time). A
// pair meets the request when its TTFT and TPOT targets hold and no member of D's batch is pushed
// past its own TPOT target. Among the pairs that do, it takes the one with the most headroom
// (the smallest slack left, as a fraction of its target, is largest), so tight classes keep room.
//
// When no pair meets the request:
//   --admission queue (default, as vLLM): it is placed on the pair predicted to miss by least;
//   --admission slo: a request whose TTFT target no pair can meet is refused at once
//     (ResourceExhausted with reason "slo_unattainable": HTTP 429 and Retry-After), so the
//     capacity goes to requests that can still make it; a request that misses only on TPOT is
//     deferred until a decode batch shrinks (DistServe's pull-based decode admission).
// A pair whose decode pool has no room is never taken (as least-loaded). Colocated nodes are
// their own D, with no transfer.
// Threading: Place() is const; the profile is immutable.
#pragma once

#include <string_view>

#include "scheduler/placement_policy.h"
#include "slo/latency_model.h"

namespace tandem {

enum class AdmissionMode { kQueue, kSlo };
// "queue" | "slo"; InvalidArgument otherwise.
Result<AdmissionMode> ParseAdmissionMode(std::string_view name);
std::string_view AdmissionModeName(AdmissionMode mode);

// The Status reason of a refusal for an SLO no placement can meet (frontends answer 429).
inline constexpr std::string_view kSloUnattainable = "slo_unattainable";

struct SloPrediction {
  double ttft_ms = 0;
  double tpot_ms = 0;
  bool ttft_met = true;
  bool tpot_met = true;  // for the request and for every member of D's batch
  double headroom = 0;   // smallest (target - predicted) / target over the targets that apply;
                         // 1 when none applies
  bool met() const { return ttft_met && tpot_met; }
};

class SloPlacementPolicy final : public PlacementPolicy {
 public:
  SloPlacementPolicy(LatencyProfile profile, AdmissionMode admission);

  PlacementDecision Place(const PlacementRequest& request, const PlacementContext& context) const override;
  std::string_view name() const override { return "slo"; }

  SloPrediction Predict(const PlacementRequest& request, const NodeView& p, const NodeView& d) const;
  const LatencyProfile& profile() const { return profile_; }

 private:
  const LatencyProfile profile_;
  const AdmissionMode admission_;
};

}  // namespace tandem
