#include "loadgen/plot.h"

#include <cairo/cairo-svg.h>
#include <cairo/cairo.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <numbers>

#include "loadgen/plot_axes.h"

namespace tandem::loadgen {
namespace {

using plot_internal::Axis;
using plot_internal::LinearAxis;
using plot_internal::LogAxis;
using plot_internal::TickLabels;

struct Rgb {
  double r, g, b;
};

// Okabe-Ito, ordered so that the first colours are the most distinct on white; yellow comes last
// because it is faint on white. Past eight curves the colours repeat with a dashed line.
constexpr Rgb kPalette[] = {
    {0.000, 0.447, 0.698},  // blue #0072B2
    {0.902, 0.624, 0.000},  // orange #E69F00
    {0.000, 0.620, 0.451},  // bluish green #009E73
    {0.835, 0.369, 0.000},  // vermillion #D55E00
    {0.800, 0.475, 0.655},  // reddish purple #CC79A7
    {0.337, 0.706, 0.914},  // sky blue #56B4E9
    {0.000, 0.000, 0.000},  // black
    {0.941, 0.894, 0.259},  // yellow #F0E442
};
constexpr size_t kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

constexpr int kMinPanelPx = 100;
constexpr int kMaxPanelPx = 8192;
constexpr int kMaxCanvasPx = 32767;  // cairo's limit for image surfaces
// Pixel coordinates are clamped to this so that a wild value cannot overflow cairo's 24.8 fixed point;
// the plot area is clipped far inside it.
constexpr double kMaxPixelCoord = 1e6;
constexpr double kInf = std::numeric_limits<double>::infinity();

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* cr) const { cairo_destroy(cr); }
};
using SurfacePtr = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using ContextPtr = std::unique_ptr<cairo_t, ContextDeleter>;

bool Finite(const std::pair<double, double>& p) { return std::isfinite(p.first) && std::isfinite(p.second); }

enum class HAlign { kLeft, kCenter, kRight };
enum class VAlign { kTop, kMiddle, kBaseline, kBottom };

struct Font {
  double size;
  bool bold = false;
};

void SetFont(cairo_t* cr, const Font& font) {
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                         font.bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, font.size);
}

double TextWidth(cairo_t* cr, const Font& font, const std::string& text) {
  SetFont(cr, font);
  cairo_text_extents_t ext;
  cairo_text_extents(cr, text.c_str(), &ext);
  return ext.x_advance;
}

// Vertical placement uses the font's ascent/descent, not the glyphs', so that labels of one row share
// a baseline whatever their letters.
void DrawText(cairo_t* cr, const Font& font, const std::string& text, double x, double y, HAlign h, VAlign v) {
  SetFont(cr, font);
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  double w = TextWidth(cr, font, text);
  double dx = h == HAlign::kLeft ? 0 : h == HAlign::kCenter ? -w / 2 : -w;
  double dy = 0;
  switch (v) {
    case VAlign::kTop: dy = fe.ascent; break;
    case VAlign::kMiddle: dy = (fe.ascent - fe.descent) / 2; break;
    case VAlign::kBaseline: dy = 0; break;
    case VAlign::kBottom: dy = -fe.descent; break;
  }
  cairo_move_to(cr, x + dx, y + dy);
  cairo_show_text(cr, text.c_str());
}

double FontHeight(cairo_t* cr, const Font& font) {
  SetFont(cr, font);
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  return fe.ascent + fe.descent;
}

void SetColor(cairo_t* cr, size_t color_index) {
  const Rgb& c = kPalette[color_index % kPaletteSize];
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

// Solid for the first pass through the palette, dashed for the next, so that curves stay distinct.
void SetCurveLine(cairo_t* cr, size_t color_index, double width) {
  SetColor(cr, color_index);
  cairo_set_line_width(cr, width);
  if ((color_index / kPaletteSize) % 2 == 1) {
    const double dash[] = {5 * width, 2.5 * width};
    cairo_set_dash(cr, dash, 2, 0);
  } else {
    cairo_set_dash(cr, nullptr, 0, 0);
  }
}

// Lines at pixel centres, so that 1 px lines are sharp in PNGs.
double Crisp(double px) { return std::floor(px) + 0.5; }

// One panel's geometry: its cell on the canvas, the plot area inside it, and the value -> pixel maps.
struct Box {
  double x0, y0, x1, y1;
};

struct Frame {
  Box box;                // the plot area, pixels
  double x0, y0, x1, y1;  // where the axis ranges map to: inset from the box, so that points on the
                          // range's ends (attainment 0 and 1) and their markers show whole
  Axis x, y;
  std::vector<std::string> x_labels, y_labels;  // one per tick
  double Px(double v) const {
    return std::clamp(x0 + (x.Unit(v) - x.lo) / (x.hi - x.lo) * (x1 - x0), -kMaxPixelCoord, kMaxPixelCoord);
  }
  double Py(double v) const {
    return std::clamp(y1 - (y.Unit(v) - y.lo) / (y.hi - y.lo) * (y1 - y0), -kMaxPixelCoord, kMaxPixelCoord);
  }
};

// The pixel path of a curve: runs of vertices, broken where a point is not finite.
std::vector<std::vector<std::pair<double, double>>> CurvePixels(const Frame& f, const Curve& curve) {
  std::vector<std::vector<std::pair<double, double>>> runs(1);
  for (const auto& p : curve.points) {
    if (!Finite(p)) {
      if (!runs.back().empty()) runs.emplace_back();
      continue;
    }
    double px = f.Px(p.first), py = f.Py(p.second);
    auto& run = runs.back();
    if (curve.step && !run.empty()) run.emplace_back(px, run.back().second);  // across, then up or down
    run.emplace_back(px, py);
  }
  return runs;
}

// Legend-placement obstacles: points along every drawn line, a few pixels apart.
void SamplePolyline(const std::vector<std::pair<double, double>>& run, std::vector<std::pair<double, double>>* out) {
  for (size_t i = 0; i < run.size(); ++i) {
    out->push_back(run[i]);
    if (i == 0) continue;
    double dx = run[i].first - run[i - 1].first, dy = run[i].second - run[i - 1].second;
    int n = static_cast<int>(std::min(std::hypot(dx, dy) / 3.0, 2000.0));
    for (int k = 1; k < n; ++k) {
      double t = static_cast<double>(k) / n;
      out->emplace_back(run[i - 1].first + t * dx, run[i - 1].second + t * dy);
    }
  }
}

// Every how many ticks a label goes, so that neighbouring labels do not touch.
size_t LabelStride(const std::vector<double>& tick_px, const std::vector<double>& label_extent, double gap) {
  double min_spacing = kMaxPixelCoord, max_extent = 0;
  for (size_t i = 1; i < tick_px.size(); ++i) {
    min_spacing = std::min(min_spacing, std::abs(tick_px[i] - tick_px[i - 1]));
  }
  for (double e : label_extent) max_extent = std::max(max_extent, e);
  size_t stride = 1;
  while (stride < tick_px.size() && static_cast<double>(stride) * min_spacing < max_extent + gap) ++stride;
  return stride;
}

// Sizes scale with the panel, so that small panels keep their proportions.
struct Style {
  double scale;
  Font title, label, tick, legend, note;
  double tick_len, line_w, marker_r;
};

void DrawNoData(cairo_t* cr, const Style& st, const Box& b) {
  cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, Crisp(b.x0), Crisp(b.y0), std::floor(b.x1 - b.x0), std::floor(b.y1 - b.y0));
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
  DrawText(cr, st.note, "no data", (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, HAlign::kCenter, VAlign::kMiddle);
}

// The axes from the data, and the plot area: what is left of `content` after the tick and axis labels.
// nullopt when the panel has no finite point.
std::optional<Frame> LayoutPanel(cairo_t* cr, const Style& st, const Panel& panel, const Box& content) {
  double xmin = kInf, xmax = -kInf, ymin = kInf, ymax = -kInf;
  for (const Curve& c : panel.curves) {
    for (const auto& p : c.points) {
      if (!Finite(p)) continue;
      xmin = std::min(xmin, p.first);
      xmax = std::max(xmax, p.first);
      ymin = std::min(ymin, p.second);
      ymax = std::max(ymax, p.second);
    }
  }
  if (xmin > xmax) return std::nullopt;

  Frame f{};
  f.x = panel.x_log ? LogAxis(xmin, xmax) : LinearAxis(xmin, xmax, std::nullopt, std::nullopt);
  if (panel.goal_y) {
    ymin = std::min(ymin, *panel.goal_y);
    ymax = std::max(ymax, *panel.goal_y);
  }
  if (ymin >= 0) ymin = 0;
  if (panel.y_min) ymin = *panel.y_min;
  if (panel.y_max) ymax = *panel.y_max;
  // One fixed end past all the data: keep the fixed end and give the other some room.
  if (ymin >= ymax) {
    double room = std::max(std::abs(panel.y_min ? ymin : ymax) * 0.1, 1.0);
    if (panel.y_min) {
      ymax = ymin + room;
    } else {
      ymin = ymax - room;
    }
  }
  f.y = LinearAxis(ymin, ymax, panel.y_min, panel.y_max);
  f.x_labels = TickLabels(f.x);
  f.y_labels = TickLabels(f.y);

  const double s = st.scale, inset = 6 * s;
  double y_labels_w = 0;
  for (const auto& l : f.y_labels) y_labels_w = std::max(y_labels_w, TextWidth(cr, st.tick, l));
  double tick_h = FontHeight(cr, st.tick), label_h = FontHeight(cr, st.label);
  double last_x_label_w = f.x_labels.empty() ? 0 : TextWidth(cr, st.tick, f.x_labels.back());
  Box& b = f.box;
  b.x0 = content.x0 + (panel.y_label.empty() ? 0 : label_h + 6 * s) + y_labels_w + st.tick_len + 4 * s;
  b.x1 = content.x1 - std::max(0.0, last_x_label_w / 2 - inset);  // room for the last label's right half
  b.y0 = content.y0 + 2 * s;
  b.y1 = content.y1 - (panel.x_label.empty() ? 0 : label_h + 4 * s) - tick_h - st.tick_len - 4 * s;
  b.x1 = std::max(b.x1, b.x0 + 2 * inset + 1);
  b.y1 = std::max(b.y1, b.y0 + 2 * inset + 1);
  f.x0 = b.x0 + inset;
  f.x1 = b.x1 - inset;
  f.y0 = b.y0 + inset;
  f.y1 = b.y1 - inset;
  return f;
}

// Grid, frame, ticks, tick labels and axis labels.
void DrawAxes(cairo_t* cr, const Style& st, const Panel& panel, const Frame& f, const Box& content) {
  const double s = st.scale;
  const Box& b = f.box;
  cairo_set_line_width(cr, 1);
  cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
  for (double t : f.x.ticks) {
    cairo_move_to(cr, Crisp(f.Px(t)), b.y0);
    cairo_line_to(cr, Crisp(f.Px(t)), b.y1);
  }
  for (double t : f.y.ticks) {
    cairo_move_to(cr, b.x0, Crisp(f.Py(t)));
    cairo_line_to(cr, b.x1, Crisp(f.Py(t)));
  }
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo_rectangle(cr, Crisp(b.x0), Crisp(b.y0), std::floor(b.x1 - b.x0), std::floor(b.y1 - b.y0));
  cairo_stroke(cr);

  std::vector<double> xpx, ypx, xext, yext;
  double tick_h = FontHeight(cr, st.tick);
  for (size_t i = 0; i < f.x.ticks.size(); ++i) {
    xpx.push_back(f.Px(f.x.ticks[i]));
    xext.push_back(TextWidth(cr, st.tick, f.x_labels[i]));
    cairo_move_to(cr, Crisp(xpx[i]), Crisp(b.y1));
    cairo_line_to(cr, Crisp(xpx[i]), Crisp(b.y1) + st.tick_len);
  }
  for (double t : f.y.ticks) {
    ypx.push_back(f.Py(t));
    yext.push_back(tick_h);
    cairo_move_to(cr, Crisp(b.x0), Crisp(ypx.back()));
    cairo_line_to(cr, Crisp(b.x0) - st.tick_len, Crisp(ypx.back()));
  }
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  for (size_t i = 0, stride = LabelStride(xpx, xext, 8 * s); i < xpx.size(); i += stride) {
    DrawText(cr, st.tick, f.x_labels[i], xpx[i], b.y1 + st.tick_len + 2 * s, HAlign::kCenter, VAlign::kTop);
  }
  for (size_t i = 0, stride = LabelStride(ypx, yext, 2 * s); i < ypx.size(); i += stride) {
    DrawText(cr, st.tick, f.y_labels[i], b.x0 - st.tick_len - 3 * s, ypx[i], HAlign::kRight, VAlign::kMiddle);
  }

  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  if (!panel.x_label.empty()) {
    DrawText(cr, st.label, panel.x_label, (f.x0 + f.x1) / 2, content.y1, HAlign::kCenter, VAlign::kBottom);
  }
  if (!panel.y_label.empty()) {
    cairo_save(cr);
    cairo_translate(cr, content.x0, (f.y0 + f.y1) / 2);
    cairo_rotate(cr, -std::numbers::pi / 2);
    DrawText(cr, st.label, panel.y_label, 0, 0, HAlign::kCenter, VAlign::kTop);
    cairo_restore(cr);
  }
}

// The goal line and the curves, clipped to the plot area (a fixed y range may cut curves). Returns
// points along all that was drawn, for the legend to avoid.
std::vector<std::pair<double, double>> DrawData(cairo_t* cr, const Style& st, const Panel& panel,
                                                const std::vector<size_t>& colors, const Frame& f) {
  const double s = st.scale;
  const Box& b = f.box;
  std::vector<std::pair<double, double>> drawn;
  cairo_save(cr);
  cairo_rectangle(cr, b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
  cairo_clip(cr);
  if (panel.goal_y) {
    double gy = f.Py(*panel.goal_y);
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_set_line_width(cr, 1.2 * s);
    const double dash[] = {6 * s, 4 * s};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, b.x0, gy);
    cairo_line_to(cr, b.x1, gy);
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    // The label sits above the line at the left, where attainment curves are usually still near 1
    // and do not cross it.
    double gx = b.x0 + 4 * s;
    DrawText(cr, st.legend, "goal", gx, gy - 2 * s, HAlign::kLeft, VAlign::kBottom);
    SamplePolyline({{b.x0, gy}, {b.x1, gy}}, &drawn);
    SamplePolyline({{gx, gy - FontHeight(cr, st.legend)}, {gx + TextWidth(cr, st.legend, "goal"), gy}}, &drawn);
  }
  for (size_t i = 0; i < panel.curves.size(); ++i) {
    const Curve& curve = panel.curves[i];
    SetCurveLine(cr, colors[i], st.line_w);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (const auto& run : CurvePixels(f, curve)) {
      if (run.empty()) continue;
      cairo_move_to(cr, run[0].first, run[0].second);
      for (size_t k = 1; k < run.size(); ++k) cairo_line_to(cr, run[k].first, run[k].second);
      cairo_stroke(cr);
      SamplePolyline(run, &drawn);
    }
    if (curve.markers) {
      SetColor(cr, colors[i]);
      for (const auto& p : curve.points) {
        if (!Finite(p)) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, f.Px(p.first), f.Py(p.second), st.marker_r, 0, 2 * std::numbers::pi);
      }
      cairo_fill(cr);
    }
  }
  cairo_restore(cr);
  return drawn;
}

// One entry per distinct label, in the corner of the plot area that covers the fewest drawn points.
void DrawLegend(cairo_t* cr, const Style& st, const Panel& panel, const std::vector<size_t>& colors, const Frame& f,
                const std::vector<std::pair<double, double>>& drawn) {
  std::vector<size_t> entries;
  for (size_t i = 0; i < panel.curves.size(); ++i) {
    const std::string& label = panel.curves[i].label;
    if (label.empty()) continue;
    bool seen = std::any_of(entries.begin(), entries.end(), [&](size_t j) { return panel.curves[j].label == label; });
    if (!seen) entries.push_back(i);
  }
  if (entries.empty()) return;
  const double s = st.scale;
  const double swatch_w = 22 * s, pad = 6 * s, row_h = FontHeight(cr, st.legend) + 3 * s;
  double text_w = 0;
  for (size_t i : entries) text_w = std::max(text_w, TextWidth(cr, st.legend, panel.curves[i].label));
  double w = pad + swatch_w + pad + text_w + pad;
  double h = 2 * pad + static_cast<double>(entries.size()) * row_h - 3 * s;
  // Top-right first: it wins ties. Points a few pixels outside the box count too, so that the legend
  // keeps clear of lines rather than just missing them.
  const Box& b = f.box;
  const double clear = 8 * s;
  const std::pair<double, double> corners[] = {{b.x1 - pad - w, b.y0 + pad},
                                               {b.x0 + pad, b.y0 + pad},
                                               {b.x1 - pad - w, b.y1 - pad - h},
                                               {b.x0 + pad, b.y1 - pad - h}};
  double lx = corners[0].first, ly = corners[0].second;
  size_t best = SIZE_MAX;
  for (const auto& corner : corners) {
    const double x = corner.first, y = corner.second;  // not a structured binding: older clang cannot capture one
    size_t covered = static_cast<size_t>(std::count_if(drawn.begin(), drawn.end(), [&](const auto& p) {
      return p.first >= x - clear && p.first <= x + w + clear && p.second >= y - clear && p.second <= y + h + clear;
    }));
    if (covered < best) {
      best = covered;
      lx = x;
      ly = y;
    }
  }

  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, Crisp(lx), Crisp(ly), std::floor(w), std::floor(h));
  cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
  cairo_stroke(cr);
  for (size_t e = 0; e < entries.size(); ++e) {
    const Curve& curve = panel.curves[entries[e]];
    size_t color = colors[entries[e]];
    double ry = ly + pad + (static_cast<double>(e) + 0.5) * row_h - 1.5 * s;
    SetCurveLine(cr, color, st.line_w);
    cairo_move_to(cr, lx + pad, ry);
    cairo_line_to(cr, lx + pad + swatch_w, ry);
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    if (curve.markers) {
      cairo_arc(cr, lx + pad + swatch_w / 2, ry, st.marker_r, 0, 2 * std::numbers::pi);
      cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    DrawText(cr, st.legend, curve.label, lx + 2 * pad + swatch_w, ry, HAlign::kLeft, VAlign::kMiddle);
  }
}

// A panel whose data passed ValidatePanel, in the cell at (cx, cy). `colors[i]` is the palette index of curve i.
void DrawPanel(cairo_t* cr, const Style& st, const Panel& panel, const std::vector<size_t>& colors, double cx,
               double cy, double cw, double ch) {
  const double pad = 10 * st.scale;
  Box content{cx + pad, cy + pad, cx + cw - pad, cy + ch - pad};
  if (!panel.title.empty()) {
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    DrawText(cr, st.title, panel.title, cx + cw / 2, content.y0, HAlign::kCenter, VAlign::kTop);
    content.y0 += FontHeight(cr, st.title) + 6 * st.scale;
  }
  std::optional<Frame> frame = LayoutPanel(cr, st, panel, content);
  if (!frame) {
    DrawNoData(cr, st, content);
    return;
  }
  DrawAxes(cr, st, panel, *frame, content);
  DrawLegend(cr, st, panel, colors, *frame, DrawData(cr, st, panel, colors, *frame));
}

Status ValidatePanel(const Panel& panel, size_t index) {
  std::string name = "panel " + std::to_string(index) + (panel.title.empty() ? "" : " (\"" + panel.title + "\")");
  for (const auto& [bound, what] : {std::pair{panel.y_min, "y_min"}, std::pair{panel.y_max, "y_max"}}) {
    if (bound && !std::isfinite(*bound)) return InvalidArgumentError(name + ": " + what + " is not finite");
  }
  if (panel.y_min && panel.y_max && *panel.y_min >= *panel.y_max) {
    return InvalidArgumentError(name + ": y_min " + std::to_string(*panel.y_min) + " >= y_max " +
                                std::to_string(*panel.y_max));
  }
  if (panel.goal_y && !std::isfinite(*panel.goal_y)) return InvalidArgumentError(name + ": goal_y is not finite");
  if (panel.x_log) {
    for (const Curve& c : panel.curves) {
      for (const auto& p : c.points) {
        if (Finite(p) && p.first <= 0) {
          return InvalidArgumentError(name + ": log x axis needs x > 0, curve \"" + c.label + "\" has x " +
                                      std::to_string(p.first));
        }
      }
    }
  }
  return Status::Ok();
}

void DrawAll(cairo_t* cr, const std::vector<Panel>& panels, int cols, int panel_w, int panel_h) {
  const double w = static_cast<double>(panel_w), h = static_cast<double>(panel_h);
  const double scale = std::clamp(std::min(w / 640.0, h / 420.0), 0.6, 2.0);
  Style st{};
  st.scale = scale;
  st.title = {15 * scale, true};
  st.label = {12.5 * scale};
  st.tick = st.legend = {11 * scale};
  st.note = {14 * scale};
  st.tick_len = 4 * scale;
  st.line_w = 2 * scale;
  st.marker_r = 3 * scale;

  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  if (panels.empty()) {
    DrawNoData(cr, st, {10 * scale, 10 * scale, w - 10 * scale, h - 10 * scale});
    return;
  }

  // Colours by first appearance of a series (its label unless named) anywhere, so a series
  // looks the same in every panel.
  std::map<std::string, size_t> by_label;
  size_t next = 0;
  for (size_t p = 0; p < panels.size(); ++p) {
    std::vector<size_t> colors;
    for (const Curve& c : panels[p].curves) {
      if (c.label.empty()) {
        colors.push_back(next++);
        continue;
      }
      auto [it, inserted] = by_label.emplace(c.series.empty() ? c.label : c.series, next);
      if (inserted) ++next;
      colors.push_back(it->second);
    }
    double cx = static_cast<double>(static_cast<int>(p) % cols) * w;
    double cy = static_cast<double>(static_cast<int>(p) / cols) * h;
    cairo_save(cr);
    DrawPanel(cr, st, panels[p], colors, cx, cy, w, h);
    cairo_restore(cr);
  }
}

Status CairoError(const std::string& path, const char* what, cairo_status_t status) {
  std::string msg = path + ": " + what + ": " + cairo_status_to_string(status);
  // A path that cannot be written is the caller's input, as elsewhere in Tandem; the rest is ours.
  if (status == CAIRO_STATUS_WRITE_ERROR || status == CAIRO_STATUS_FILE_NOT_FOUND) {
    return InvalidArgumentError(std::move(msg));
  }
  return InternalError(std::move(msg));
}

}  // namespace

Status RenderPanels(const std::vector<Panel>& panels, const std::string& out_path, int panel_width_px,
                    int panel_height_px) {
  for (int px : {panel_width_px, panel_height_px}) {
    if (px < kMinPanelPx || px > kMaxPanelPx) {
      return InvalidArgumentError("panel size " + std::to_string(panel_width_px) + "x" +
                                  std::to_string(panel_height_px) + " px is outside [" + std::to_string(kMinPanelPx) +
                                  ", " + std::to_string(kMaxPanelPx) + "]");
    }
  }
  std::string ext = std::filesystem::path(out_path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext != ".png" && ext != ".svg") {
    return InvalidArgumentError(out_path + ": unknown plot file type \"" + ext + "\" (want .png or .svg)");
  }
  for (size_t i = 0; i < panels.size(); ++i) RETURN_IF_ERROR(ValidatePanel(panels[i], i));

  const int cols = panels.size() <= 1 ? 1 : 2;
  const size_t cells = std::max<size_t>(panels.size(), 1);  // an empty list still gets a "no data" cell
  const int rows = static_cast<int>((cells + static_cast<size_t>(cols) - 1) / static_cast<size_t>(cols));
  if (static_cast<int64_t>(rows) * panel_height_px > kMaxCanvasPx) {
    return InvalidArgumentError(std::to_string(panels.size()) + " panels of " + std::to_string(panel_height_px) +
                                " px do not fit in one image of at most " + std::to_string(kMaxCanvasPx) + " px");
  }
  const int width = cols * panel_width_px, height = rows * panel_height_px;

  SurfacePtr surface(ext == ".png" ? cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height)
                                   : cairo_svg_surface_create(out_path.c_str(), width, height));
  if (cairo_status_t st = cairo_surface_status(surface.get()); st != CAIRO_STATUS_SUCCESS) {
    return CairoError(out_path, "creating surface", st);
  }
  {
    ContextPtr cr(cairo_create(surface.get()));
    DrawAll(cr.get(), panels, cols, panel_width_px, panel_height_px);
    if (cairo_status_t st = cairo_status(cr.get()); st != CAIRO_STATUS_SUCCESS) {
      return CairoError(out_path, "drawing", st);
    }
  }
  if (ext == ".png") {
    if (cairo_status_t st = cairo_surface_write_to_png(surface.get(), out_path.c_str()); st != CAIRO_STATUS_SUCCESS) {
      return CairoError(out_path, "writing PNG", st);
    }
  } else {
    // The SVG is written as it is drawn and completed here; a full disk shows up only now.
    cairo_surface_finish(surface.get());
    if (cairo_status_t st = cairo_surface_status(surface.get()); st != CAIRO_STATUS_SUCCESS) {
      return CairoError(out_path, "writing SVG", st);
    }
  }
  return Status::Ok();
}

}  // namespace tandem::loadgen
