#include "loadgen/plot.h"

#include <cairo/cairo.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

using tandem::loadgen::Curve;
using tandem::loadgen::NiceTicks;
using tandem::loadgen::Panel;
using tandem::loadgen::RenderPanels;

namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards, so that parallel runs do not collide.
class PlotFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("tandem_plot_test_" + std::string(info->name()) + "_" +
                                        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The three panels of a typical sweep report.
std::vector<Panel> SamplePanels() {
  Panel attainment;
  attainment.title = "SLO attainment";
  attainment.x_label = "rate (req/s)";
  attainment.y_label = "attainment";
  attainment.goal_y = 0.9;
  attainment.y_min = 0;
  attainment.y_max = 1;
  Curve a{"tandem", {}}, b{"baseline", {}};
  for (int i = 1; i <= 8; ++i) {
    double r = i;
    a.points.emplace_back(r, 1.0 / (1.0 + std::exp(r - 6)));
    b.points.emplace_back(r, 1.0 / (1.0 + std::exp(r - 3)));
  }
  attainment.curves = {a, b};

  Panel cdf;
  cdf.title = "TTFT CDF";
  Curve c{"tandem", {}, false, true};
  for (int i = 1; i <= 50; ++i) c.points.emplace_back(10.0 * i, i / 50.0);
  cdf.curves = {c};

  Panel timeline;
  timeline.title = "in flight";
  timeline.curves = {Curve{"in flight", {{0, 0}, {1, 3}, {2, 5}, {3, 2}}, false, true}};
  return {attainment, cdf, timeline};
}

// Every consecutive gap equals one step of the form {1, 2, 5} x 10^k.
void ExpectNiceSteps(const std::vector<double>& ticks) {
  ASSERT_GE(ticks.size(), 2u);
  double step = ticks[1] - ticks[0];
  ASSERT_GT(step, 0);
  double e = std::floor(std::log10(step) + 1e-9);
  double m = step / std::pow(10.0, e);
  EXPECT_TRUE(std::abs(m - 1) < 1e-6 || std::abs(m - 2) < 1e-6 || std::abs(m - 5) < 1e-6) << "step " << step;
  for (size_t i = 1; i < ticks.size(); ++i) EXPECT_NEAR(ticks[i] - ticks[i - 1], step, step * 1e-9);
}

void ExpectCovers(const std::vector<double>& ticks, double lo, double hi) {
  ASSERT_FALSE(ticks.empty());
  EXPECT_LE(ticks.front(), lo);
  EXPECT_GE(ticks.back(), hi);
}

}  // namespace

TEST(NiceTicksTest, UnitRangeStepsByFifths) {
  std::vector<double> ticks = NiceTicks(0, 1);
  ExpectNiceSteps(ticks);
  ExpectCovers(ticks, 0, 1);
  ASSERT_EQ(ticks.size(), 6u);
  EXPECT_DOUBLE_EQ(ticks[3], 0.6);  // exact, not 0.6000000000000001
}

TEST(NiceTicksTest, CoversAwkwardRangesWithNiceSteps) {
  const std::pair<double, double> ranges[] = {{0, 7.3},      {0.13, 0.87}, {-3.2, 41},  {1234, 98765},
                                              {-1e-6, 3e-6}, {17, 18},     {0, 123456}, {-500, -20}};
  for (const auto& [lo, hi] : ranges) {
    SCOPED_TRACE(std::to_string(lo) + ".." + std::to_string(hi));
    std::vector<double> ticks = NiceTicks(lo, hi);
    ExpectNiceSteps(ticks);
    ExpectCovers(ticks, lo, hi);
    EXPECT_GE(ticks.size(), 3u);
    EXPECT_LE(ticks.size(), 12u);
  }
}

TEST(NiceTicksTest, TargetChangesTheDensity) {
  EXPECT_GT(NiceTicks(0, 100, 12).size(), NiceTicks(0, 100, 3).size());
  ExpectNiceSteps(NiceTicks(0, 100, 12));
}

TEST(NiceTicksTest, DegenerateInputs) {
  std::vector<double> same = NiceTicks(5, 5);  // a range is made around the value
  ExpectNiceSteps(same);
  ExpectCovers(same, 5, 5);
  EXPECT_LT(same.front(), 5);
  EXPECT_GT(same.back(), 5);
  ExpectCovers(NiceTicks(0, 0), 0, 0);
  ExpectCovers(NiceTicks(10, 2), 2, 10);  // swapped
  EXPECT_TRUE(NiceTicks(std::nan(""), 1).empty());
  EXPECT_TRUE(NiceTicks(0, std::numeric_limits<double>::infinity()).empty());
}

TEST_F(PlotFiles, PngHasTheSignatureAndTheGridSize) {
  std::string path = Path("sweep.png");
  ASSERT_TRUE(RenderPanels(SamplePanels(), path, 400, 300).ok());
  std::string bytes = ReadFile(path);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  cairo_surface_t* png = cairo_image_surface_create_from_png(path.c_str());
  ASSERT_EQ(cairo_surface_status(png), CAIRO_STATUS_SUCCESS);
  EXPECT_EQ(cairo_image_surface_get_width(png), 2 * 400);   // two columns
  EXPECT_EQ(cairo_image_surface_get_height(png), 2 * 300);  // three panels -> two rows
  cairo_surface_destroy(png);
}

TEST_F(PlotFiles, OnePanelIsOneColumn) {
  std::string path = Path("one.PNG");  // the extension is matched without case
  ASSERT_TRUE(RenderPanels({SamplePanels()[0]}, path).ok());
  cairo_surface_t* png = cairo_image_surface_create_from_png(path.c_str());
  ASSERT_EQ(cairo_surface_status(png), CAIRO_STATUS_SUCCESS);
  EXPECT_EQ(cairo_image_surface_get_width(png), 640);
  EXPECT_EQ(cairo_image_surface_get_height(png), 420);
  cairo_surface_destroy(png);
}

TEST_F(PlotFiles, SvgIsAnSvgDocument) {
  std::string path = Path("sweep.svg");
  ASSERT_TRUE(RenderPanels(SamplePanels(), path).ok());
  std::string text = ReadFile(path);
  EXPECT_TRUE(text.rfind("<?xml", 0) == 0 || text.find("<svg") != std::string::npos) << text.substr(0, 80);
  EXPECT_NE(text.find("</svg>"), std::string::npos);  // finished, not truncated
}

TEST_F(PlotFiles, UnknownExtensionIsInvalidArgument) {
  for (const char* name : {"plot.jpg", "plot", "plot.png.txt"}) {
    tandem::Status st = RenderPanels(SamplePanels(), Path(name));
    EXPECT_EQ(st.code(), tandem::StatusCode::kInvalidArgument) << name << ": " << st.ToString();
    EXPECT_FALSE(fs::exists(Path(name))) << name;
  }
}

TEST_F(PlotFiles, UnwritablePathNamesThePath) {
  for (const char* path : {"/nonexistent_dir/x.png", "/nonexistent_dir/x.svg"}) {
    tandem::Status st = RenderPanels(SamplePanels(), path);
    ASSERT_FALSE(st.ok()) << path;
    EXPECT_NE(st.message().find(path), std::string::npos) << st.ToString();
  }
}

TEST_F(PlotFiles, EmptyDataIsDrawnNotAnError) {
  EXPECT_TRUE(RenderPanels({}, Path("none.png")).ok());
  EXPECT_TRUE(fs::exists(Path("none.png")));

  Panel no_curves;
  no_curves.title = "nothing yet";
  Panel empty_curve;
  empty_curve.curves = {Curve{"empty", {}}};
  Panel all_nan;
  all_nan.curves = {Curve{"nan", {{std::nan(""), 1}, {2, std::numeric_limits<double>::infinity()}}}};
  std::vector<Panel> panels = {no_curves, empty_curve, all_nan};
  EXPECT_TRUE(RenderPanels(panels, Path("empty.png")).ok());
  EXPECT_TRUE(RenderPanels(panels, Path("empty.svg")).ok());
}

TEST_F(PlotFiles, DegenerateDataIsDrawn) {
  Panel single;
  single.curves = {Curve{"one", {{3, 7}}}};
  Panel same_x;
  same_x.curves = {Curve{"same x", {{2, 1}, {2, 5}, {2, 3}}}};
  Panel gaps;
  gaps.curves = {Curve{"gaps", {{0, 1}, {1, std::nan("")}, {2, 3}, {std::numeric_limits<double>::infinity(), 4}}}};
  Panel huge;
  huge.curves = {Curve{"huge", {{0, 0}, {1e6, 3e9}}}};
  Panel outside_fixed;  // data far outside a fixed range is clipped, not an error
  outside_fixed.y_min = 0;
  outside_fixed.y_max = 1;
  outside_fixed.curves = {Curve{"wild", {{0, -1e300}, {1, 1e300}, {2, 0.5}}}};
  Panel log_x;
  log_x.x_log = true;
  log_x.curves = {Curve{"log", {{0.5, 1}, {8, 2}, {4000, 3}}}};
  EXPECT_TRUE(RenderPanels({single, same_x, gaps, huge, outside_fixed, log_x}, Path("edge.png")).ok());
}

TEST_F(PlotFiles, LogAxisNeedsPositiveX) {
  Panel log_x;
  log_x.x_log = true;
  log_x.curves = {Curve{"bad", {{0, 1}, {10, 2}}}};
  EXPECT_EQ(RenderPanels({log_x}, Path("log.png")).code(), tandem::StatusCode::kInvalidArgument);
}

TEST_F(PlotFiles, BadFixedRangeOrSizeIsInvalidArgument) {
  Panel p = SamplePanels()[0];
  p.y_min = 1;
  p.y_max = 0;
  EXPECT_EQ(RenderPanels({p}, Path("range.png")).code(), tandem::StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderPanels(SamplePanels(), Path("size.png"), 0, 420).code(), tandem::StatusCode::kInvalidArgument);
}
