// GET /metrics on a port of its own, for processes that have no HTTP server (the prefill and
// decode nodes): a small Boost.Beast server on one thread. Each scrape renders the collectable
// at that moment; any other path is 404, any other method 405. One request per connection (a
// scraper reconnects; this keeps the server free of keep-alive state), and a client that sends
// nothing for 10 s is dropped.
#pragma once

#include <prometheus/collectable.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace tandem {

class MetricsEndpoint {
 public:
  // Binds host:port (0: an ephemeral port) and starts serving. Errors: InvalidArgument for a bad
  // host, Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<MetricsEndpoint>> Start(const std::string& host, int port,
                                                        std::shared_ptr<prometheus::Collectable> collectable);
  ~MetricsEndpoint();  // stops accepting, drops open connections, joins the thread
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  uint16_t port() const;

 private:
  class Impl;
  explicit MetricsEndpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
