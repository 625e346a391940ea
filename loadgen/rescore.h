// `tandem bench rescore`: a saved single-run result judged again under other SLO targets, from its
// per-request records alone. The server never sees the targets (unless a request names a class
// it schedules by), so one run answers every SLO setting exactly; the experiment scripts score
// each run under several settings instead of rerunning it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "loadgen/metrics.h"
#include "loadgen/report.h"

namespace tandem::loadgen {

// The per-request records of a result JSON ("requests"), back as RequestResults, with the
// setup it echoed. InvalidArgument for a sweep file or a result without records.
struct SavedRun {
  RunInfo info;
  double duration_s = 0;
  std::vector<RequestResult> results;
};
Result<SavedRun> ReadSavedRun(const nlohmann::json& result, const std::string& name);

// Reads `in_path`, scores it under `slo` (labelled `label` when non-empty) and writes the new
// result JSON to `out_path`; returns its summary.
Result<Summary> RescoreFile(const std::string& in_path, const SloPolicy& slo, const std::vector<std::string>& goodput,
                            const std::string& label, const std::string& out_path);

}  // namespace tandem::loadgen
