#include "apps/scrape_config.h"

#include <fstream>
#include <sstream>

namespace tandem {

std::string ScrapeConfigYaml(const std::vector<MetricsTarget>& targets, int scrape_interval_s) {
  std::ostringstream y;
  y << "# Written by tandem serve: every process of this cluster exposes GET /metrics.\n"
    << "# Run prometheus --config.file=THIS_FILE, or copy the job into your scrape_configs.\n"
    << "# Each series already carries role and node_id; `process` names the endpoint.\n"
    << "global:\n"
    << "  scrape_interval: " << scrape_interval_s << "s\n"
    << "scrape_configs:\n"
    << "  - job_name: tandem\n"
    << "    metrics_path: /metrics\n"
    << "    static_configs:\n";
  for (const MetricsTarget& t : targets) {
    y << "      - targets: ['" << t.host << ":" << t.port << "']\n"
      << "        labels:\n"
      << "          process: '" << t.name << "'\n";
  }
  return y.str();
}

Status WriteScrapeConfig(const std::string& path, const std::vector<MetricsTarget>& targets, int scrape_interval_s) {
  std::ofstream out(path, std::ios::trunc);
  out << ScrapeConfigYaml(targets, scrape_interval_s);
  out.close();
  if (!out) return UnavailableError("cannot write the scrape configuration " + path);
  return Status::Ok();
}

}  // namespace tandem
