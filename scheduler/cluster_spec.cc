#include "scheduler/cluster_spec.h"

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace tandem {

Status ClusterSpec::Validate() const {
  if (prefill.empty()) return InvalidArgumentError("the cluster has no prefill node");
  if (decode.empty()) return InvalidArgumentError("the cluster has no decode node");
  std::set<std::string> ids;
  for (const auto* list : {&prefill, &decode}) {
    for (const NodeAddress& n : *list) {
      if (!ids.insert(n.id).second) return InvalidArgumentError("node id '" + n.id + "' appears twice");
    }
  }
  return Status::Ok();
}

Result<NodeAddress> ParseHostPort(std::string id, std::string_view text) {
  if (id.empty()) return InvalidArgumentError("empty node id in '" + std::string(text) + "'");
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return InvalidArgumentError("node '" + id + "': expected HOST:PORT, got '" + std::string(text) + "'");
  }
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return InvalidArgumentError("node '" + id + "': bad bracketed host in '" + std::string(text) + "'");
    }
    host = host.substr(1, host.size() - 2);
  }
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return InvalidArgumentError("node '" + id + "': port must be 1..65535, got '" + std::string(port_text) + "'");
  }
  return NodeAddress{std::move(id), std::string(host), static_cast<uint16_t>(port)};
}

Result<NodeAddress> ParseNodeAddress(std::string_view text) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return InvalidArgumentError("expected ID=HOST:PORT, got '" + std::string(text) + "'");
  }
  return ParseHostPort(std::string(text.substr(0, eq)), text.substr(eq + 1));
}

Result<ClusterSpec> ParseClusterJson(std::string_view json_text, const std::string& source) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(source + ": not valid JSON: " + e.what());
  }
  if (!doc.is_object()) return InvalidArgumentError(source + ": expected a JSON object");
  ClusterSpec spec;
  for (const auto& [key, value] : doc.items()) {
    std::vector<NodeAddress>* out = nullptr;
    if (key == "prefill") out = &spec.prefill;
    else if (key == "decode") out = &spec.decode;
    else return InvalidArgumentError(source + ": unknown key '" + key + "' (expected prefill, decode)");
    if (!value.is_array()) return InvalidArgumentError(source + ": '" + key + "' must be an array");
    for (size_t i = 0; i < value.size(); ++i) {
      const auto& node = value[i];
      const std::string where = source + ": " + key + "[" + std::to_string(i) + "]";
      if (!node.is_object() || !node.contains("id") || !node.contains("address") || !node["id"].is_string() ||
          !node["address"].is_string()) {
        return InvalidArgumentError(where + ": expected {\"id\": string, \"address\": \"HOST:PORT\"}");
      }
      auto addr = ParseHostPort(node["id"].get<std::string>(), node["address"].get<std::string>());
      if (!addr.ok()) return InvalidArgumentError(where + ": " + addr.status().message());
      out->push_back(std::move(*addr));
    }
  }
  return spec;
}

Result<ClusterSpec> LoadClusterFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open cluster file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseClusterJson(ss.str(), path);
}

Result<ClusterSpec> BuildClusterSpec(const std::vector<std::string>& prefill_flags,
                                     const std::vector<std::string>& decode_flags, const std::string& cluster_file) {
  ClusterSpec spec;
  if (!cluster_file.empty()) {
    ASSIGN_OR_RETURN(spec, LoadClusterFile(cluster_file));
  }
  for (const std::string& f : prefill_flags) {
    auto a = ParseNodeAddress(f);
    if (!a.ok()) return InvalidArgumentError("--prefill-node: " + a.status().message());
    spec.prefill.push_back(std::move(*a));
  }
  for (const std::string& f : decode_flags) {
    auto a = ParseNodeAddress(f);
    if (!a.ok()) return InvalidArgumentError("--decode-node: " + a.status().message());
    spec.decode.push_back(std::move(*a));
  }
  RETURN_IF_ERROR(spec.Validate());
  return spec;
}

}  // namespace tandem
