// What the router knows about one node: the one struct for a node's state, its last load report
// and the router's own charges since. The router core keeps one per configured node, indexed by
// NodeIndex (their order in the cluster spec: prefill nodes first, then decode nodes); GET
// /v1/load shows them.
//
// Node state:
//   kConnecting --handshake--> kReady (placeable once its first LoadReport arrived: `reported`)
//   kReady --connection lost--> kDown --reconnected--> kReady ...
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "model/block_hash.h"

namespace tandem {

enum class NodeRole { kPrefill, kDecode, kColocated };
enum class NodeState { kConnecting, kReady, kDown };
std::string_view NodeRoleName(NodeRole role);     // "prefill", "decode", "colocated"
std::string_view NodeStateName(NodeState state);  // "connecting", "ready", "down"

using NodeIndex = int32_t;

// A node's LoadReport, as plain data.
struct NodeLoadReport {
  uint32_t queued_requests = 0;
  uint64_t queued_tokens = 0;  // prompt tokens waiting for prefill
  uint32_t running_requests = 0;
  uint32_t free_blocks = 0;  // KV blocks neither reserved nor running
  uint32_t total_blocks = 0;
  float busy_fraction = 0.0f;   // share of the last interval spent computing
  float latency_factor = 0.0f;  // measured / predicted step time (0: the node has no profile)
  // Prefill nodes: the decode nodes (ids) their KV can reach now.
  std::vector<std::string> connected_decode_nodes;
  // Prefix cache changes (LoadReport.cache_*): applied to NodeView::cached_blocks, then dropped.
  std::vector<BlockHash> cache_stored, cache_removed;
  bool cache_snapshot = false;
  uint32_t cache_block_size = 0;
};

// What the router itself placed on a node and has not yet seen leave it: the SLO policy's picture
// of the node, exact for this router and never stale (reports are). Maintained by the router core.
struct PlacedWork {
  // Prefill-capable nodes: prompts placed here whose first token has not come back, by TTFT
  // deadline (router clock), the order the prefill node runs them in.
  std::multimap<int64_t, int64_t> prefill_queue;  // deadline -> prompt tokens
  // Decode-capable nodes: requests placed here (still prefilling elsewhere, or decoding) that have
  // not finished, the tokens their sequences hold, and their TPOT targets.
  int32_t decode_requests = 0;
  int64_t decode_context_tokens = 0;
  std::multiset<double> tpot_targets_ms;  // one entry per member with a TPOT target

  double tightest_tpot_ms() const { return tpot_targets_ms.empty() ? 0 : *tpot_targets_ms.begin(); }
  int32_t prefill_requests() const { return static_cast<int32_t>(prefill_queue.size()); }
  int64_t prefill_tokens() const {
    int64_t n = 0;
    for (const auto& [deadline, tokens] : prefill_queue) n += tokens;
    return n;
  }
};

struct NodeView {
  std::string id;
  NodeRole role = NodeRole::kDecode;
  NodeState state = NodeState::kConnecting;
  bool reported = false;           // a LoadReport arrived since it (re)connected
  uint32_t block_size_tokens = 0;  // from its Hello (pool owners); 0 = unknown
  // From its Hello: its pool takes prompt + max_tokens per request up front (kReserve) instead
  // of the prompt's blocks, growing as it decodes (kGrow).
  bool reserves_output_blocks = false;
  NodeLoadReport load;    // its latest report
  int64_t report_us = 0;  // when that report arrived (router clock)
  // Prefill nodes: reaches[d] says whether decode node index d is in its connected list.
  std::vector<bool> reaches;
  // The router's own charges on top of the report:
  uint64_t charged_tokens = 0;       // prefill: prompt tokens placed since the last report
  uint32_t charged_blocks = 0;       // decode: blocks of requests placed here that its last report may
                                     // not count yet (until a report that follows their first token)
  std::vector<int64_t> charged_ids;  // the requests holding those charges (some may have ended since)
  PlacedWork placed;
  std::string last_error;
  int64_t times_up = 0;    // handshakes completed (kReady entered)
  int64_t times_down = 0;  // connections lost (kDown entered)
  // Prefix caching (prefill-capable nodes that report it): the content hashes of the KV blocks
  // its cache holds, as of its reports; forgotten when it goes down (a restart empties it).
  std::unordered_set<BlockHash, BlockHashHasher> cached_blocks;
  uint32_t cache_block_size = 0;  // 0: it caches nothing

  bool healthy() const { return state == NodeState::kReady && reported; }
  bool can_prefill() const { return role != NodeRole::kDecode; }
  bool can_decode() const { return role != NodeRole::kPrefill; }
  // The estimates placement uses: the report plus what the router placed since.
  uint64_t queued_tokens() const { return load.queued_tokens + charged_tokens; }
  uint32_t free_blocks() const { return load.free_blocks > charged_blocks ? load.free_blocks - charged_blocks : 0; }
  // Prompt tokens of a request (its block hashes for this node's block size) this node's cache
  // holds: the leading run of cached blocks, at most `max_blocks`.
  int64_t CachedPrefixTokens(std::span<const BlockHash> hashes, int32_t max_blocks) const;
};

}  // namespace tandem
