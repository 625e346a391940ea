#include "scheduler/placement_policy.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "engine/request_rules.h"

namespace tandem {

bool PlacementContext::Excluded(NodeIndex d) const {
  return std::find(excluded_decode.begin(), excluded_decode.end(), d) != excluded_decode.end();
}

bool PlacementContext::Reaches(NodeIndex p, NodeIndex d) const {
  const NodeView& pv = nodes[static_cast<size_t>(p)];
  if (pv.role == NodeRole::kColocated || nodes[static_cast<size_t>(d)].role == NodeRole::kColocated) return p == d;
  return static_cast<size_t>(d) < pv.reaches.size() && pv.reaches[static_cast<size_t>(d)];
}

uint32_t LifetimeBlocks(const PlacementRequest& request, const NodeView& d) {
  // A pool whose block size is unknown cannot be judged: it holds nothing (the router refuses
  // such a decode node at Hello, so this is a guard, not a rule).
  if (d.block_size_tokens == 0) return UINT32_MAX;
  return static_cast<uint32_t>(
      KvBlocksForRequest(request.prompt_tokens, request.max_tokens, static_cast<int32_t>(d.block_size_tokens)));
}

uint32_t BlocksNeeded(const PlacementRequest& request, const NodeView& d) {
  if (d.block_size_tokens == 0 || d.reserves_output_blocks) return LifetimeBlocks(request, d);
  return static_cast<uint32_t>(BlocksForTokens(request.prompt_tokens, static_cast<int32_t>(d.block_size_tokens)));
}

std::optional<PlacementDecision> GatherCandidates(const PlacementRequest& request, const PlacementContext& ctx,
                                                  PlacementCandidates* out) {
  int refused = 0;  // healthy decode nodes that refused this request already
  for (NodeIndex i = 0; i < static_cast<NodeIndex>(ctx.nodes.size()); ++i) {
    const NodeView& n = ctx.nodes[static_cast<size_t>(i)];
    if (!n.healthy()) continue;
    if (n.can_prefill()) out->prefill.push_back(i);
    if (n.can_decode() && ctx.Excluded(i)) {
      ++refused;
    } else if (n.can_decode()) {
      out->decode.push_back(i);
    }
  }
  if (out->prefill.empty()) return PlacementDecision::Reject(UnavailableError("no healthy prefill node"));
  if (out->decode.empty() && refused > 0) {
    return PlacementDecision::Reject(UnavailableError("every healthy decode node (" + std::to_string(refused) +
                                                      ") refused this request's KV reservation"));
  }
  if (out->decode.empty()) return PlacementDecision::Reject(UnavailableError("no healthy decode node"));
  uint32_t largest_pool = 0;
  bool fits_some_pool = false;
  for (NodeIndex d : out->decode) {
    const NodeView& n = ctx.nodes[static_cast<size_t>(d)];
    const uint32_t need = LifetimeBlocks(request, n);
    if (need != UINT32_MAX) out->most_needed = std::max(out->most_needed, need);
    largest_pool = std::max(largest_pool, n.load.total_blocks);
    fits_some_pool = fits_some_pool || need <= n.load.total_blocks;
  }
  if (!fits_some_pool) {  // waiting would not help: say so instead of "try again later"
    return PlacementDecision::Reject(
        OutOfRangeError(std::to_string(request.prompt_tokens) + " prompt + " + std::to_string(request.max_tokens) +
                        " output tokens need " + std::to_string(out->most_needed) +
                        " KV blocks, more than the largest decode node holds (" + std::to_string(largest_pool) +
                        "); lower max_tokens or shorten the prompt"));
  }
  return std::nullopt;
}

PlacementDecision NoRoomDecision(const PlacementRequest& request, const PlacementCandidates& candidates,
                                 bool any_pair) {
  if (!any_pair) {
    return PlacementDecision::Reject(
        UnavailableError("no healthy prefill node is connected to a healthy decode node (see GET /v1/load)"));
  }
  return PlacementDecision::Defer(
      ResourceExhaustedError("no decode node has room for " + std::to_string(request.prompt_tokens) + " prompt + " +
                             std::to_string(request.max_tokens) + " output tokens (up to " +
                             std::to_string(candidates.most_needed) + " KV blocks needed)"));
}

int64_t PlacementRequest::CachedTokensOn(const NodeView& node) const {
  if (prefix_hashes.empty() || prefix_block_size == 0 || node.cache_block_size != prefix_block_size) return 0;
  return node.CachedPrefixTokens(prefix_hashes, (prompt_tokens - 1) / static_cast<int32_t>(prefix_block_size));
}

PlacementDecision LeastLoadedPolicy::Place(const PlacementRequest& request, const PlacementContext& ctx) const {
  PlacementCandidates c;
  if (auto end = GatherCandidates(request, ctx, &c)) return *end;
  const auto node = [&](NodeIndex i) -> const NodeView& { return ctx.nodes[static_cast<size_t>(i)]; };
  // The prefill work this request would wait behind and add: queued tokens, plus its own prompt
  // less what the node's prefix cache holds (KV-aware routing: a conversation's next turn goes
  // where its history is cached unless that node is busier by more than the history is long).
  const auto work = [&](NodeIndex i) {
    return static_cast<int64_t>(node(i).queued_tokens()) - request.CachedTokensOn(node(i));
  };
  // The most free blocks among the decode nodes each prefill node reaches: when prefill nodes
  // reach different decode nodes (machines holding both phases), equal prefill work is broken by
  // the decode side, or idle prefill nodes in id order would send everything to one machine.
  std::vector<uint32_t> reach_free(ctx.nodes.size(), 0);
  for (NodeIndex p : c.prefill) {
    for (NodeIndex d : c.decode) {
      if (ctx.Reaches(p, d)) {
        reach_free[static_cast<size_t>(p)] = std::max(reach_free[static_cast<size_t>(p)], node(d).free_blocks());
      }
    }
  }
  std::sort(c.prefill.begin(), c.prefill.end(), [&](NodeIndex a, NodeIndex b) {
    if (work(a) != work(b)) return work(a) < work(b);
    const uint32_t ra = reach_free[static_cast<size_t>(a)], rb = reach_free[static_cast<size_t>(b)];
    if (ra != rb) return ra > rb;
    // No prompts waiting on either: the one holding less (a colocated node's decode batch lives in
    // its blocks; without this, every request between reports would go to the first node).
    if (node(a).free_blocks() != node(b).free_blocks()) return node(a).free_blocks() > node(b).free_blocks();
    return node(a).id < node(b).id;
  });
  bool any_pair = false;
  for (NodeIndex p : c.prefill) {
    NodeIndex best = -1;
    for (NodeIndex d : c.decode) {
      if (!ctx.Reaches(p, d)) continue;
      any_pair = true;
      if (BlocksNeeded(request, node(d)) > node(d).free_blocks()) continue;
      // The decode node that holds the prompt's start (it decoded the conversation's last turn)
      // receives only the rest of the KV; then the most free blocks.
      const int64_t cached = request.CachedTokensOn(node(d));
      const int64_t best_cached = best < 0 ? 0 : request.CachedTokensOn(node(best));
      if (best < 0 || cached > best_cached ||
          (cached == best_cached &&
           (node(d).free_blocks() > node(best).free_blocks() ||
            (node(d).free_blocks() == node(best).free_blocks() && node(d).id < node(best).id)))) {
        best = d;
      }
    }
    if (best >= 0) return PlacementDecision::Place(p, best);
  }
  return NoRoomDecision(request, c, any_pair);
}

Result<std::unique_ptr<PlacementPolicy>> CreatePlacementPolicy(std::string_view name) {
  if (name == "least-loaded") return std::unique_ptr<PlacementPolicy>(std::make_unique<LeastLoadedPolicy>());
  return InvalidArgumentError("unknown placement policy '" + std::string(name) + "' (known: least-loaded)");
}

}  // namespace tandem
