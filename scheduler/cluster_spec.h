// The router's view of the cluster it serves: which prefill and decode nodes exist and where
// they listen. Given as repeated `--prefill-node ID=HOST:PORT` / `--decode-node ID=HOST:PORT`
// flags and/or a JSON cluster file:
//
//   {"prefill": [{"id": "prefill-0", "address": "127.0.0.1:9100"}],
//    "decode":  [{"id": "decode-0",  "address": "127.0.0.1:9200"}]}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

struct NodeAddress {
  std::string id;    // unique in the cluster, e.g. "prefill-0"
  std::string host;  // IP literal or name
  uint16_t port = 0;

  std::string ToString() const { return id + "=" + host + ":" + std::to_string(port); }
};

struct ClusterSpec {
  std::vector<NodeAddress> prefill;
  std::vector<NodeAddress> decode;

  // InvalidArgument when either list is empty or a node id appears twice (across both lists).
  Status Validate() const;
};

// "ID=HOST:PORT" (IPv6 hosts in brackets: "d0=[::1]:9000"). InvalidArgument naming the flaw.
Result<NodeAddress> ParseNodeAddress(std::string_view text);
// "HOST:PORT" with the given id.
Result<NodeAddress> ParseHostPort(std::string id, std::string_view text);
// The JSON cluster file's text (`source` names it in errors). Not validated: flags may add nodes.
Result<ClusterSpec> ParseClusterJson(std::string_view json_text, const std::string& source);
Result<ClusterSpec> LoadClusterFile(const std::string& path);

// The router's flags: the cluster file's nodes (if `cluster_file` is not empty) followed by the
// repeated --prefill-node / --decode-node values; validated (both roles present, unique ids).
Result<ClusterSpec> BuildClusterSpec(const std::vector<std::string>& prefill_flags,
                                     const std::vector<std::string>& decode_flags, const std::string& cluster_file);

}  // namespace tandem
