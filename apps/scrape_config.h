// The Prometheus configuration `tandem serve` writes for its cluster: every process's /metrics
// endpoint as one scrape job. Usable as is (prometheus --config.file=FILE) or as a snippet to
// copy into an existing configuration's scrape_configs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

struct MetricsTarget {
  std::string name;  // "router", "prefill-0", ...
  std::string host;
  uint16_t port = 0;
};

// The YAML text; `scrape_interval_s` for the job (Prometheus's own default is 60 s).
std::string ScrapeConfigYaml(const std::vector<MetricsTarget>& targets, int scrape_interval_s);
// Writes it to `path`. Errors: Unavailable naming the file.
Status WriteScrapeConfig(const std::string& path, const std::vector<MetricsTarget>& targets, int scrape_interval_s);

}  // namespace tandem
