// RouterCore's per-request state, shared by its two source files (router_core.cc: requests;
// router_core_nodes.cc: node events). Not for other users.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/router_core.h"

namespace tandem {

struct RouterCore::Flight {
  enum class Phase { kQueued, kPrefilling, kDecoding };
  std::shared_ptr<const ServingRequest> request;
  Phase phase = Phase::kQueued;
  NodeIndex p = -1;  // placed on (-1 while queued)
  NodeIndex d = -1;
  uint32_t charged_blocks = 0;  // charged to d until D's first report after the first token
  bool placed_prefill = false;  // counted in nodes_[p].placed (until its first token)
  std::multimap<int64_t, int64_t>::iterator placed_prefill_entry;  // its entry in prefill_queue
  bool placed_decode = false;      // counted in nodes_[d].placed (until it ends or moves)
  int64_t placed_context = 0;      // the tokens it counts for in nodes_[d].placed
  std::vector<NodeIndex> refused;  // decode nodes that refused its reservation
  std::string last_refusal;
  std::vector<std::pair<NodeIndex, TokensReport>> held;  // tokens that overtook the FirstToken
  bool counted_deferral = false;                         // in RouterDecisionCounts::queued already
  bool kv_ready = false;                                 // P reported its KV landed on D: P is no longer needed
  int64_t last_token_us = 0;
  std::vector<BlockHash> prefix_hashes;  // its prompt's blocks for the prefix caches (HashPrefix)
  uint32_t prefix_block_size = 0;
  RequestRecord record;
};

}  // namespace tandem
