// Where a disaggregated request runs: one prefill node (P) that computes its prompt's KV and
// first token, and one decode node (D) that holds the KV and generates the rest.
//
// The router keeps a NodeLoad snapshot per healthy node (the node's latest LoadReport, adjusted
// by the router for what it placed since) and asks the policy for a (P, D) pair per request.
// Policies are pure functions of their inputs so they are easy to test and to swap: the default
// LeastLoadedPolicy balances queues and memory; a goodput-aware policy (predicting TTFT on each P
// from its queue and TPOT on each D from its batch) can replace it behind the same interface.
//
// Threading: Place() is const and must be safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

// What the router knows about one node. Fields a node did not report are 0.
struct NodeLoad {
  std::string node_id;
  uint32_t queued_requests = 0;
  uint64_t queued_tokens = 0;      // prompt tokens waiting for prefill (P)
  uint32_t running_requests = 0;
  uint32_t free_blocks = 0;        // KV blocks not reserved (D)
  uint32_t total_blocks = 0;
  uint32_t block_size_tokens = 0;  // tokens per KV block (D's Hello); 0 = unknown
  float busy_fraction = 0.0f;
  int64_t report_us = 0;           // NowMicros() when the report arrived
};

struct PlacementRequest {
  int32_t prompt_tokens = 0;
  int32_t max_tokens = 0;
};

struct Placement {
  std::string prefill_node_id;
  std::string decode_node_id;
};

// KV blocks D must reserve for the request: ceil((prompt + max_tokens) / block_size), the rule
// of the protocol (docs/ISSUE4 protocol, step 1). block_size 0 (unknown) counts as 1 block.
uint32_t BlocksNeeded(const PlacementRequest& request, uint32_t block_size_tokens);

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;

  // Chooses one of `prefill` and one of `decode` (the healthy candidates; the caller has already
  // removed nodes that are down or that refused this request). Errors: Unavailable when either
  // list is empty; ResourceExhausted when no decode node can hold the request.
  virtual Result<Placement> Place(const PlacementRequest& request, const std::vector<NodeLoad>& prefill,
                                  const std::vector<NodeLoad>& decode) const = 0;

  virtual std::string_view name() const = 0;
};

// P with the fewest queued tokens; D with the most free blocks among those that can hold the
// request (BlocksNeeded <= free_blocks). Ties go to the lexicographically lowest node id, so the
// choice is deterministic whatever order the candidates come in.
class LeastLoadedPolicy final : public PlacementPolicy {
 public:
  Result<Placement> Place(const PlacementRequest& request, const std::vector<NodeLoad>& prefill,
                          const std::vector<NodeLoad>& decode) const override;
  std::string_view name() const override { return "least-loaded"; }
};

// "least-loaded" -> LeastLoadedPolicy; InvalidArgument listing the known names otherwise.
Result<std::unique_ptr<PlacementPolicy>> CreatePlacementPolicy(std::string_view name);

}  // namespace tandem
