// Constructed node views for table-driven placement tests: every policy sees the same kind of
// cluster, built in a line per node.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "scheduler/placement_policy.h"

namespace tandem::testing {

// Healthy nodes; prefill nodes reach every decode node unless a test says otherwise.
class Nodes {
 public:
  NodeIndex P(std::string id, uint64_t queued_tokens) {
    NodeView n = Healthy(std::move(id), NodeRole::kPrefill);
    n.load.queued_tokens = queued_tokens;
    nodes_.push_back(std::move(n));
    return Last();
  }
  NodeIndex D(std::string id, uint32_t free_blocks, uint32_t block_size = 16, uint32_t total = 1000) {
    NodeView n = Healthy(std::move(id), NodeRole::kDecode);
    n.load.free_blocks = free_blocks;
    n.load.total_blocks = total;
    n.block_size_tokens = block_size;
    n.reserves_output_blocks = true;  // block counts read as prompt + max_tokens; see Grows()
    nodes_.push_back(std::move(n));
    return Last();
  }
  // The pool takes a request's prompt blocks and grows (the nodes' default, kGrow).
  void Grows(NodeIndex d) { nodes_[static_cast<size_t>(d)].reserves_output_blocks = false; }
  NodeIndex Colocated(std::string id, uint32_t free_blocks, uint32_t total = 1000) {
    NodeView n = Healthy(std::move(id), NodeRole::kColocated);
    n.load.free_blocks = free_blocks;
    n.load.total_blocks = total;
    n.block_size_tokens = 16;
    n.reserves_output_blocks = true;
    nodes_.push_back(std::move(n));
    return Last();
  }
  // Every prefill node reaches every decode node (call after adding them).
  void ConnectAll() {
    for (NodeView& n : nodes_) {
      if (n.role != NodeRole::kPrefill) continue;
      n.reaches.assign(nodes_.size(), false);
      for (size_t d = 0; d < nodes_.size(); ++d) n.reaches[d] = nodes_[d].role == NodeRole::kDecode;
    }
  }
  NodeView& operator[](NodeIndex i) { return nodes_[static_cast<size_t>(i)]; }
  const std::string& Id(NodeIndex i) const { return nodes_[static_cast<size_t>(i)].id; }

  PlacementDecision Place(PlacementRequest want, std::vector<NodeIndex> excluded = {}) const {
    return LeastLoadedPolicy().Place(want, PlacementContext{nodes_, excluded});
  }
  PlacementDecision Place(const PlacementPolicy& policy, PlacementRequest want) const {
    return policy.Place(want, PlacementContext{nodes_, {}});
  }

 private:
  static NodeView Healthy(std::string id, NodeRole role) {
    NodeView n;
    n.id = std::move(id);
    n.role = role;
    n.state = NodeState::kReady;
    n.reported = true;
    return n;
  }
  NodeIndex Last() const { return static_cast<NodeIndex>(nodes_.size()) - 1; }
  std::vector<NodeView> nodes_;
};

}  // namespace tandem::testing
