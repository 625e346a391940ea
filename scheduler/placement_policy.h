// Where a request runs: a prefill node P (its prompt's KV and first token) and a decode node D
// (the rest), or one colocated node for both. A policy is a pure function of the request and
// the router's node views (their last reports plus the router's own charges since): no clock,
// no I/O, so it is easy to test, to swap, and to run unchanged in the simulator.
//
// The decision is one of
//   Place(P, D)    send it now;
//   Defer(reason)  nothing can take it now but waiting may help (every decode pool that could
//                  hold it is full): the router queues it and asks again when loads change;
//   Reject(status) waiting cannot help: no healthy node of a role (Unavailable), no pool could
//                  ever hold it (OutOfRange).
// Threading: Place() is const and safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "scheduler/node_view.h"
#include "slo/slo_config.h"

namespace tandem {

struct PlacementRequest {
  int32_t prompt_tokens = 0;
  int32_t max_tokens = 0;
  RequestSlo slo;          // its targets (empty: none)
  int64_t arrival_us = 0;  // router clock; with slo.ttft_ms, its place in a prefill node's queue
  int64_t waited_us = 0;   // since arrival: a TTFT target counts from there
  // Prefix caching: the chain hashes of the prompt's full blocks (model/block_hash.h) for blocks
  // of `prefix_block_size` tokens; empty when no node reports a cache.
  std::span<const BlockHash> prefix_hashes;
  uint32_t prefix_block_size = 0;

  // Prompt tokens `node`'s prefix cache holds for this request (all but the last token at most:
  // it is computed for the first token's logits); 0 for a node with another block size.
  int64_t CachedTokensOn(const NodeView& node) const;
};

struct PlacementDecision {
  enum class Kind { kPlace, kDefer, kReject };
  Kind kind = Kind::kReject;
  NodeIndex prefill = -1;
  NodeIndex decode = -1;
  Status reason;  // kDefer, kReject: why

  static PlacementDecision Place(NodeIndex p, NodeIndex d) { return {Kind::kPlace, p, d, Status::Ok()}; }
  static PlacementDecision Defer(Status why) { return {Kind::kDefer, -1, -1, std::move(why)}; }
  static PlacementDecision Reject(Status why) { return {Kind::kReject, -1, -1, std::move(why)}; }
};

// The nodes the policy may choose from. `nodes` is every configured node (index = NodeIndex);
// the policy considers only healthy ones, and no decode node in `excluded_decode` (those that
// refused this request already).
struct PlacementContext {
  std::span<const NodeView> nodes;
  std::span<const NodeIndex> excluded_decode;

  bool Excluded(NodeIndex d) const;
  // Whether P's KV reaches D: a prefill node must report D connected; a colocated node is its
  // own decode node.
  bool Reaches(NodeIndex p, NodeIndex d) const;
};

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  virtual PlacementDecision Place(const PlacementRequest& request, const PlacementContext& context) const = 0;
  virtual std::string_view name() const = 0;
};

// P with the least prefill work for this request: queued tokens (reported + placed since) less
// the prompt tokens its prefix cache holds for it; then among the decode nodes P
// reaches that can hold the request now (BlocksNeeded <= free blocks), D with the most
// free blocks; when P reaches none with room, the next P. Ties go to the lexicographically lowest
// node id, so the choice does not depend on the order of the candidates.
class LeastLoadedPolicy final : public PlacementPolicy {
 public:
  PlacementDecision Place(const PlacementRequest& request, const PlacementContext& context) const override;
  std::string_view name() const override { return "least-loaded"; }
};

// The checks every policy starts with, shared: the healthy candidates of each role (decode nodes
// not excluded), or the Reject that ends the search (no node of a role; no pool could ever hold
// the request).
struct PlacementCandidates {
  std::vector<NodeIndex> prefill;
  std::vector<NodeIndex> decode;
  uint32_t most_needed = 0;  // blocks the request may need over its life, on the hungriest pool
};
std::optional<PlacementDecision> GatherCandidates(const PlacementRequest& request, const PlacementContext& context,
                                                  PlacementCandidates* out);
// KV blocks the request takes in d's pool when it arrives there: its prompt's on a pool whose
// sequences grow, prompt + max_tokens on one that reserves (UINT32_MAX when d's block size is
// unknown).
uint32_t BlocksNeeded(const PlacementRequest& request, const NodeView& d);
// KV blocks the request may hold in d's pool over its life: prompt + max_tokens (UINT32_MAX when
// d's block size is unknown).
uint32_t LifetimeBlocks(const PlacementRequest& request, const NodeView& d);
// The answer when candidates exist but no pair has room now: Reject when no prefill node reaches
// a candidate decode node (`any_pair` false), Defer otherwise.
PlacementDecision NoRoomDecision(const PlacementRequest& request, const PlacementCandidates& candidates, bool any_pair);

// "least-loaded" -> LeastLoadedPolicy; InvalidArgument listing the known names otherwise. For
// "slo" see scheduler/slo_placement_policy.h (it needs a latency profile).
Result<std::unique_ptr<PlacementPolicy>> CreatePlacementPolicy(std::string_view name);

}  // namespace tandem
