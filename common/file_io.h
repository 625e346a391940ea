// Small whole-file helpers: the JSON side files of a checkpoint (config.json,
// generation_config.json, model.safetensors.index.json; tensor data is memory-mapped instead,
// model/mapped_file.h), SLO class files, benchmark data sets and results, latency profiles.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace tandem {

// NotFound when `path` does not exist, InvalidArgument when it is not a regular file or cannot be
// read; the message names the path.
Result<std::string> ReadTextFile(const std::string& path);

// Writes `text` to `path` (replacing it), creating missing parent directories; the error names
// the path.
Status WriteTextFile(const std::string& path, std::string_view text);

// True when `path` names an existing regular file (or a link to one).
bool IsRegularFile(const std::string& path);

// "dir/name" without doubling the separator.
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace tandem
