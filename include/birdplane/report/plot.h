// Small report writers for experiments: line plots as standalone SVG files and tables as Markdown
// and JSON. No plotting library: an SVG is text, readable in any browser and in GitHub's docs view.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace birdplane::report {

/// One line of a plot: points (x[i], y[i]) joined in order.
struct Series {
  std::string label;
  std::vector<double> x, y;
  bool markers = false;  ///< also draw a dot at each point
};

/// A 2-D line plot with a title, axis labels, ticks, grid and legend.
struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  /// Fixed y range; when ymin >= ymax the range is taken from the data (padded 5%).
  double ymin = 0, ymax = 0;
  /// The SVG text (640x400 px).
  std::string to_svg() const;
  /// Writes to_svg() to `path` through a temporary file and rename.
  void write_svg(const std::string& path) const;
};

/// One group of a bar chart: a value per category, drawn in one colour.
struct BarGroup {
  std::string label;
  std::vector<double> values;  ///< one per category
};

/// Grouped bars: for each category (a model, say) one bar per group (train and validation accuracy),
/// with a title, a y axis with ticks and grid, the category names below and a legend.
struct BarChart {
  std::string title, y_label;
  std::vector<std::string> categories;
  std::vector<BarGroup> groups;
  /// Fixed y range; when ymin >= ymax it is 0 to the largest value (padded 5%).
  double ymin = 0, ymax = 0;
  /// The SVG text (at least 640x400 px, wider with many categories).
  std::string to_svg() const;
  /// Writes to_svg() to `path` through a temporary file and rename.
  void write_svg(const std::string& path) const;
};

/// "Nice" tick positions (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi], about `count` of them.
std::vector<double> nice_ticks(double lo, double hi, int count = 6);

/// A table of values: column names and rows of cells (numbers, strings or booleans).
struct Table {
  std::string title;
  std::vector<std::string> columns;
  std::vector<std::vector<nlohmann::json>> rows;
  /// Markdown (a '### title' line, then a pipe table); numbers printed with `digits` significant digits.
  std::string to_markdown(int digits = 4) const;
  /// {"title": ..., "columns": [...], "rows": [{column: value, ...}, ...]}
  nlohmann::json to_json() const;
};


}  // namespace birdplane::report
