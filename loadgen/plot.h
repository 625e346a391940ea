// Line plots of benchmark results (SLO attainment vs rate, latency CDFs, timelines) written as PNG
// or SVG with cairo, so a sweep can leave a picture beside its JSON without Python.
// Pure functions with no shared state: callable from any thread.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace tandem::loadgen {

struct Curve {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the given order
  bool markers = true;                            // a dot at each point
  bool step = false;                              // staircase (for CDFs and timelines)
  std::string series;  // what the colour follows ("" = the label): "1P+1D @ 1 req/s" keeps 1P+1D's
};

struct Panel {
  std::string title, x_label, y_label;
  std::vector<Curve> curves;
  std::optional<double> goal_y;        // a dashed horizontal line (e.g. the 90% attainment goal), labelled "goal"
  std::optional<double> y_min, y_max;  // fixed y range; otherwise from the data (with 0 included when all y >= 0)
  bool x_log = false;                  // log10 x axis (all x > 0 required, else InvalidArgument)
};

// Draws the panels in a grid (one column for 1 panel, two columns otherwise; rows as needed), each
// with axes, "nice" ticks (1/2/5 x 10^k steps) with tick labels, axis labels, title, light grid lines,
// a legend listing the curves with their colours, and one distinct colour per curve (a fixed
// colour-blind-friendly palette, e.g. Okabe-Ito; the same label gets the same colour in every panel).
// The file type follows the extension of `out_path`: ".png" or ".svg"; anything else -> InvalidArgument.
// An empty panel list, a panel without any point -> drawn with "no data" text, not an error.
// A file that cannot be written -> a Status naming the path and cairo's status string.
// Non-finite coordinates are skipped (a line breaks there). The legend goes in whichever corner of the
// plot area covers the fewest drawn points. InvalidArgument also for panel sizes outside [100, 8192] px
// and for a fixed y range that is empty or not finite.
Status RenderPanels(const std::vector<Panel>& panels, const std::string& out_path, int panel_width_px = 640,
                    int panel_height_px = 420);

// The "nice" tick positions covering [lo, hi] (exposed for tests): about `target` ticks, step 1/2/5 x 10^k.
// The first tick is <= lo and the last >= hi; lo > hi are swapped; lo == hi gets a small range around it;
// non-finite input gives {}.
std::vector<double> NiceTicks(double lo, double hi, int target = 6);

}  // namespace tandem::loadgen
