#include "scheduler/node_view.h"

namespace tandem {

std::string_view NodeRoleName(NodeRole role) {
  switch (role) {
    case NodeRole::kPrefill:
      return "prefill";
    case NodeRole::kDecode:
      return "decode";
    case NodeRole::kColocated:
      return "colocated";
  }
  return "?";
}

std::string_view NodeStateName(NodeState state) {
  switch (state) {
    case NodeState::kConnecting:
      return "connecting";
    case NodeState::kReady:
      return "ready";
    case NodeState::kDown:
      return "down";
  }
  return "?";
}

int64_t NodeView::CachedPrefixTokens(std::span<const BlockHash> hashes, int32_t max_blocks) const {
  if (cache_block_size == 0 || cached_blocks.empty()) return 0;
  int64_t n = 0;
  for (const BlockHash& h : hashes) {
    if (n >= max_blocks || cached_blocks.count(h) == 0) break;
    ++n;
  }
  return n * cache_block_size;
}

}  // namespace tandem
