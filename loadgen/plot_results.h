// `tandem bench plot`: result JSONs (single runs and sweeps, ours or the simulator's) to one
// picture: SLO attainment vs request rate (a curve per label, the goal line), TTFT and TPOT CDFs,
// requests in flight and streamed chunks per second over time.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "loadgen/plot.h"

namespace tandem::loadgen {

// The panels for already-parsed results; `names` label results that carry no "label".
Result<std::vector<Panel>> PanelsFromResults(const std::vector<nlohmann::json>& results,
                                             const std::vector<std::string>& names, double goal);

// Reads the files, builds the panels and renders them to `out_path` (.png or .svg).
Status PlotResultFiles(const std::vector<std::string>& paths, const std::string& out_path, double goal);

}  // namespace tandem::loadgen
