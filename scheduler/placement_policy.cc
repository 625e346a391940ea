#include "scheduler/placement_policy.h"

#include <algorithm>
#include <string>

namespace tandem {

uint32_t BlocksNeeded(const PlacementRequest& request, uint32_t block_size_tokens) {
  const uint64_t tokens = static_cast<uint64_t>(std::max(request.prompt_tokens, 0)) +
                          static_cast<uint64_t>(std::max(request.max_tokens, 0));
  if (block_size_tokens == 0) return 1;
  return static_cast<uint32_t>((tokens + block_size_tokens - 1) / block_size_tokens);
}

Result<Placement> LeastLoadedPolicy::Place(const PlacementRequest& request, const std::vector<NodeLoad>& prefill,
                                           const std::vector<NodeLoad>& decode) const {
  if (prefill.empty()) return UnavailableError("no healthy prefill node");
  if (decode.empty()) return UnavailableError("no healthy decode node");

  const NodeLoad* best_p = nullptr;
  for (const NodeLoad& p : prefill) {
    if (best_p == nullptr || p.queued_tokens < best_p->queued_tokens ||
        (p.queued_tokens == best_p->queued_tokens && p.node_id < best_p->node_id)) {
      best_p = &p;
    }
  }

  const NodeLoad* best_d = nullptr;
  uint32_t most_needed = 0;
  uint32_t largest_pool = 0;
  bool fits_some_pool = false;
  for (const NodeLoad& d : decode) {
    const uint32_t needed = BlocksNeeded(request, d.block_size_tokens);
    most_needed = std::max(most_needed, needed);
    largest_pool = std::max(largest_pool, d.total_blocks);
    fits_some_pool = fits_some_pool || needed <= d.total_blocks;
    if (needed > d.free_blocks) continue;
    if (best_d == nullptr || d.free_blocks > best_d->free_blocks ||
        (d.free_blocks == best_d->free_blocks && d.node_id < best_d->node_id)) {
      best_d = &d;
    }
  }
  if (!fits_some_pool) {  // waiting would not help: say so instead of "try again later"
    return OutOfRangeError(std::to_string(request.prompt_tokens) + " prompt + " + std::to_string(request.max_tokens) +
                           " output tokens need " + std::to_string(most_needed) +
                           " KV blocks, more than the largest decode node holds (" + std::to_string(largest_pool) +
                           "); lower max_tokens or shorten the prompt");
  }
  if (best_d == nullptr) {
    return ResourceExhaustedError("no decode node has room for " + std::to_string(request.prompt_tokens) +
                                  " prompt + " + std::to_string(request.max_tokens) + " output tokens (up to " +
                                  std::to_string(most_needed) + " KV blocks needed)");
  }
  return Placement{best_p->node_id, best_d->node_id};
}

Result<std::unique_ptr<PlacementPolicy>> CreatePlacementPolicy(std::string_view name) {
  if (name == "least-loaded") return std::unique_ptr<PlacementPolicy>(std::make_unique<LeastLoadedPolicy>());
  return InvalidArgumentError("unknown placement policy '" + std::string(name) + "' (known: least-loaded)");
}

}  // namespace tandem
