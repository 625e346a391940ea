#include "scheduler/node_view.h"

namespace tandem {

std::string_view NodeRoleName(NodeRole role) {
  switch (role) {
    case NodeRole::kPrefill: return "prefill";
    case NodeRole::kDecode: return "decode";
    case NodeRole::kColocated: return "colocated";
  }
  return "?";
}

std::string_view NodeStateName(NodeState state) {
  switch (state) {
    case NodeState::kConnecting: return "connecting";
    case NodeState::kReady: return "ready";
    case NodeState::kDown: return "down";
  }
  return "?";
}

}  // namespace tandem
