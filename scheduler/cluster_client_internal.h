// ClusterClient's private state, shared by its two source files: cluster_client.cc (the
// public API, placement, events and the dispatcher) and cluster_client_messages.cc (what the
// node connections deliver, on their io threads). Not for other users.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "scheduler/cluster_client.h"

namespace tandem {

// A steady-clock stamp (NowMicros) as wall-clock microseconds, for the wire.
inline int64_t ToUnixMicros(int64_t steady_us) {
  const int64_t unix_now = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  return unix_now - (NowMicros() - steady_us);
}

struct ClusterClient::Node {
  NodeAddress addr;
  bool prefill = false;
  std::unique_ptr<rpc::RpcClient> rpc;
  // GUARDED_BY(mu_):
  NodeState state = NodeState::kConnecting;
  bool reported = false;
  NodeLoad load;
  std::string last_error;

  bool healthy() const { return state == NodeState::kReady && reported; }
};

struct ClusterClient::Flight {
  enum class Phase { kReserving, kPrefilling, kDecoding };
  ServingRequest request;
  EventCallback callback;
  std::string wire_id;
  Phase phase = Phase::kReserving;
  int p = -1;  // node indices
  int d = -1;
  std::vector<std::string> refused;  // decode ids that refused or could not be reached
  std::string last_refusal;
  std::vector<proto::TokenChunk> held;  // chunks that overtook the FirstToken
  bool kv_ready = false;                // P reported the KV landed on D (its KvReady copy)
  RequestRecord record;
};

}  // namespace tandem
