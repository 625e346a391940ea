// RouterCore: node events and the views built from them (requests are in router_core.cc).
#include <algorithm>

#include "scheduler/router_core.h"
#include "scheduler/router_core_flight.h"

namespace tandem {

void RouterCore::OnNodeConnected(NodeIndex node, uint32_t block_size_tokens, int64_t now, RouterActions* out,
                                 bool reserves_output_blocks) {
  NodeView& n = nodes_[node];
  n.reserves_output_blocks = reserves_output_blocks;
  n.state = NodeState::kReady;
  ++n.times_up;
  n.reported = false;  // placement waits for a fresh report from this incarnation
  n.last_error.clear();
  n.block_size_tokens = block_size_tokens;
  n.charged_tokens = 0;
  if (n.role == NodeRole::kPrefill) {
    std::fill(n.reaches.begin(), n.reaches.end(), false);
    out->push_back(SendClusterView{node});
  }
}

void RouterCore::ApplyCacheEvents(NodeView& n, NodeLoadReport& report) {
  if (report.cache_block_size != n.cache_block_size) n.cached_blocks.clear();
  n.cache_block_size = report.cache_block_size;
  if (report.cache_snapshot) n.cached_blocks.clear();
  for (const BlockHash& h : report.cache_removed) n.cached_blocks.erase(h);
  n.cached_blocks.insert(report.cache_stored.begin(), report.cache_stored.end());
  report.cache_stored.clear();  // applied: the view keeps the set, not the report's copy
  report.cache_removed.clear();
}

void RouterCore::OnNodeRefused(NodeIndex node, const Status& why) { nodes_[node].last_error = why.ToString(); }

void RouterCore::OnNodeDisconnected(NodeIndex node, const Status& why, int64_t now, RouterActions* out) {
  NodeView& n = nodes_[node];
  if (n.state != NodeState::kDown) ++n.times_down;
  n.state = NodeState::kDown;
  n.reported = false;
  n.last_error = why.ToString();
  n.charged_tokens = 0;
  n.cached_blocks.clear();
  n.cache_block_size = 0;
  for (NodeView& p : nodes_) {
    if (p.role == NodeRole::kPrefill) p.reaches[static_cast<size_t>(node)] = false;
  }
  std::vector<int64_t> failed;
  for (const auto& [id, f] : flights_) {
    if (f->phase == Flight::Phase::kQueued) continue;
    // After its KvReady a request no longer needs P. Between the FirstToken and the KvReady the
    // KV is still moving: a dead P will never finish it, and waiting for D's transfer timeout
    // would hold the client that long, so it fails now (D drains and frees). P sends its KvReady
    // to the router before the decode node, so it is not lost behind the connection's end.
    const bool on_p = f->p == node && (f->phase == Flight::Phase::kPrefilling || !f->kv_ready);
    const bool on_d = f->d == node;
    if (on_p || on_d) failed.push_back(id);
  }
  std::sort(failed.begin(), failed.end());
  const Status down =
      UnavailableError(std::string(NodeRoleName(n.role)) + " node " + n.id + " disconnected: " + why.ToString());
  for (int64_t id : failed) Finish(id, FinishReason::kError, down, {}, node, now, out);
  DrainQueue(now, out);
}

void RouterCore::OnLoadReport(NodeIndex node, NodeLoadReport report, int64_t now, RouterActions* out) {
  NodeView& n = nodes_[node];
  if (n.state != NodeState::kReady) return;
  if (n.role == NodeRole::kPrefill) {
    std::fill(n.reaches.begin(), n.reaches.end(), false);
    for (const std::string& id : report.connected_decode_nodes) {
      const NodeIndex d = FindNode(id);
      if (d >= 0 && nodes_[d].role == NodeRole::kDecode) n.reaches[static_cast<size_t>(d)] = true;
    }
  }
  ApplyCacheEvents(n, report);
  n.load = std::move(report);
  n.report_us = now;
  n.charged_tokens = 0;  // the report includes what was placed before it
  n.reported = true;
  if (n.can_decode()) {
    // A request past its first token had its blocks reserved before the token was sampled, so this
    // report counts them: the router's charge for it ends here. Only the charged are visited (a
    // cluster's thousands of decoding requests are not, on every report of every node).
    std::vector<int64_t> still;
    for (int64_t id : n.charged_ids) {
      auto it = flights_.find(id);
      if (it == flights_.end() || it->second->d != node || it->second->charged_blocks == 0) continue;
      if (it->second->phase == Flight::Phase::kDecoding) {
        Uncharge(*it->second);
      } else {
        still.push_back(id);
      }
    }
    n.charged_ids = std::move(still);
  }
  DrainQueue(now, out);
}

bool RouterCore::Ready() const {
  if (shutting_down_) return false;
  for (const NodeView& n : nodes_) {
    if (!n.healthy()) return false;
  }
  for (const NodeView& p : nodes_) {
    if (p.role != NodeRole::kPrefill) continue;
    for (NodeIndex d = 0; d < static_cast<NodeIndex>(nodes_.size()); ++d) {
      if (nodes_[d].role == NodeRole::kDecode && !p.reaches[static_cast<size_t>(d)]) return false;
    }
  }
  return true;
}

bool RouterCore::Serving() const {
  if (shutting_down_) return false;
  for (NodeIndex p = 0; p < static_cast<NodeIndex>(nodes_.size()); ++p) {
    if (!nodes_[p].healthy() || !nodes_[p].can_prefill()) continue;
    for (NodeIndex d = 0; d < static_cast<NodeIndex>(nodes_.size()); ++d) {
      if (!nodes_[d].healthy() || !nodes_[d].can_decode()) continue;
      if (nodes_[p].role == NodeRole::kColocated
              ? p == d
              : static_cast<size_t>(d) < nodes_[p].reaches.size() && nodes_[p].reaches[static_cast<size_t>(d)]) {
        return true;
      }
    }
  }
  return false;
}

std::string RouterCore::NotReadyReason() const {
  if (shutting_down_) return "the router is shutting down";
  std::string why;
  const auto add = [&why](const std::string& s) { why += (why.empty() ? "" : ", ") + s; };
  for (const NodeView& n : nodes_) {
    if (n.healthy()) continue;
    add(n.id + " (" + std::string(NodeStateName(n.state)) +
        (n.state == NodeState::kReady ? ", no load report yet" : "") +
        (n.last_error.empty() ? "" : ": " + n.last_error) + ")");
  }
  for (const NodeView& p : nodes_) {
    if (p.role != NodeRole::kPrefill || !p.healthy()) continue;
    for (NodeIndex d = 0; d < static_cast<NodeIndex>(nodes_.size()); ++d) {
      if (nodes_[d].role == NodeRole::kDecode && !p.reaches[static_cast<size_t>(d)]) {
        add(p.id + " does not reach decode node " + nodes_[d].id);
      }
    }
  }
  return why;
}

LoadInfo RouterCore::Load() const {
  LoadInfo info;
  info.num_requests = static_cast<int32_t>(flights_.size());
  info.num_queued = static_cast<int32_t>(queue_.size());
  info.decisions = decisions_;
  bool any = false;
  int32_t free = 0, total = 0;
  for (const NodeView& n : nodes_) {
    info.nodes.push_back(n);
    if (!n.can_decode() || !n.healthy()) continue;
    any = true;
    free += static_cast<int32_t>(n.free_blocks());
    total += static_cast<int32_t>(n.load.total_blocks);
  }
  if (any) {
    info.num_free_kv_blocks = free;
    info.num_total_kv_blocks = total;
  }
  return info;
}

int64_t RouterCore::MaxSequenceTokens() const {
  int64_t most = -1;
  for (const NodeView& n : nodes_) {
    if (!n.can_decode() || !n.healthy()) continue;
    most = std::max<int64_t>(most, static_cast<int64_t>(n.load.total_blocks) * n.block_size_tokens);
  }
  return most;
}

}  // namespace tandem
