// GET /v1/load of a `tandem serve` router as a struct: the totals and each node's own report.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/frontend/serving_test_util.h"

namespace tandem::testing {

// One node as GET /v1/load reports it.
struct NodeLoadView {
  std::string id;
  std::string role;
  std::string state;
  int queued_requests = 0;
  int running_requests = 0;
  int free_kv_blocks = -1;
  int total_kv_blocks = -1;
};

struct LoadView {
  int num_requests = -1;  // the router's requests in flight
  int num_free_kv_blocks = -1;
  std::vector<NodeLoadView> nodes;

  const NodeLoadView* Node(const std::string& id) const {
    for (const NodeLoadView& n : nodes) {
      if (n.id == id) return &n;
    }
    return nullptr;
  }
  int FreeBlocks(const std::string& id) const {
    const NodeLoadView* n = Node(id);
    return n ? n->free_kv_blocks : -1;
  }
  std::string State(const std::string& id) const {
    const NodeLoadView* n = Node(id);
    return n ? n->state : "";
  }
};

// GET /v1/load through `client`; nullopt when there is no parseable answer.
inline std::optional<LoadView> GetLoad(TestHttpClient& client) {
  const HttpReply r = client.Get("/v1/load");
  if (r.status != 200) return std::nullopt;
  const nlohmann::json j = r.json();
  if (!j.is_object() || !j.contains("nodes") || !j["nodes"].is_array()) return std::nullopt;
  LoadView v;
  v.num_requests = j.value("num_requests", -1);
  v.num_free_kv_blocks = j.value("num_free_kv_blocks", -1);
  for (const auto& n : j["nodes"]) {
    NodeLoadView nv;
    nv.id = n.value("id", "");
    nv.role = n.value("role", "");
    nv.state = n.value("state", "");
    nv.queued_requests = n.value("queued_requests", 0);
    nv.running_requests = n.value("running_requests", 0);
    nv.free_kv_blocks = n.value("free_kv_blocks", -1);
    nv.total_kv_blocks = n.value("total_kv_blocks", -1);
    v.nodes.push_back(std::move(nv));
  }
  return v;
}

}  // namespace tandem::testing
