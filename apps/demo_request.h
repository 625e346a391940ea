// The client half of `tandem serve --demo-request`: one streaming chat completion against our
// own server, printing the reply text as the SSE chunks arrive.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "common/status.h"

namespace tandem {

struct DemoRequest {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string model;        // "model" field
  std::string prompt;       // one user message
  int max_tokens = 32;
  std::string api_key;      // empty: none
  int timeout_s = 120;      // per socket read/write
};

// Streams the reply's text to `out` (no trailing newline). Returns the finish reason
// ("stop"/"length"). Errors: Unavailable for connection failures, Internal for a non-200 status
// or an SSE error event (with its message).
Result<std::string> RunDemoRequest(const DemoRequest& request, std::ostream& out);

}  // namespace tandem
