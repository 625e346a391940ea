// The flags of an OpenAI-API server (tandem router, worker, serve), written straight into its
// HttpServerOptions.
#pragma once

#include <CLI/CLI.hpp>

#include "frontend/http_server.h"

namespace tandem {

// --host, --port, --api-key, --http-threads, --max-body-kib. `http`'s current values are the
// defaults shown in --help.
void AddHttpOptions(CLI::App& sub, HttpServerOptions& http);

}  // namespace tandem
