#include "apps/http_options.h"

#include <string>

namespace tandem {

void AddHttpOptions(CLI::App& sub, HttpServerOptions& http) {
  sub.add_option("--host", http.host, "HTTP address to listen on")->capture_default_str();
  sub.add_option("--port", http.port, "HTTP port (0: any free port)")->capture_default_str();
  sub.add_option("--api-key", http.api_key, "Require 'Authorization: Bearer KEY'");
  sub.add_option("--http-threads", http.num_threads, "HTTP io threads")->capture_default_str()->check(CLI::Range(1, 64));
  sub.add_option_function<size_t>(
         "--max-body-kib", [&http](size_t kib) { http.max_body_bytes = kib * 1024; },
         "Largest request body in KiB (413 above)")
      ->default_str(std::to_string(http.max_body_bytes / 1024))
      ->check(CLI::Range(1, 1 << 20));
}

}  // namespace tandem
