// The control plane's TLS flags (common/rpc/tls.h), shared by `tandem router`, `prefill`,
// `decode` and `serve` (which passes them on to the nodes it starts).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "common/rpc/rpc_options.h"

namespace tandem {

// --tls-cert, --tls-key, --tls-ca (existing files; all three or none).
void AddTlsOptions(CLI::App& sub, rpc::TlsFiles* files);

// The same flags on a child's command line; nothing when `files` is empty.
void AppendTlsArgs(const rpc::TlsFiles& files, std::vector<std::string>* argv);

}  // namespace tandem
