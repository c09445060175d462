#include "birdplane/report/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/report/run_report.h"
#include "common/files.h"

namespace birdplane::report {
namespace {

constexpr double kWidth = 640, kHeight = 400;
constexpr double kLeft = 72, kRight = 20, kTop = 40, kBottom = 56;
// Colour-blind friendly (Okabe-Ito).
const char* const kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};


// The opening of a plot's SVG: the root element, a white background and the title centred at title_x.
std::string svg_start(double width, double height, double title_x, const std::string& title) {
  return fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                     "font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"13\">\n"
                     "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                     "<text x=\"{2}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">{3}</text>\n",
                     width, height, title_x, html_escape(title));
}

std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-9) return "0";
  int decimals = 0;  // enough digits to tell ticks `step` apart (0.25 needs 2, 0.2 needs 1)
  while (decimals < 8 && std::abs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6)
    ++decimals;
  return fmt::format("{:.{}f}", v, decimals);
}

std::string format_number(double v, int digits) {
  if (std::isnan(v)) return "nan";
  if (v == std::floor(v) && std::abs(v) < 1e15) return fmt::format("{:.0f}", v);
  return fmt::format("{:.{}g}", v, digits);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, count - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

std::string LinePlot::to_svg() const {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    BIRDPLANE_CHECK(s.x.size() == s.y.size(), "plot series '{}' has {} x values and {} y values", s.label,
                    s.x.size(), s.y.size());
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  {  // widen the x range to whole ticks, so the axis starts and ends on a label
    const auto t = nice_ticks(x0, x1);
    const double step = t.size() > 1 ? t[1] - t[0] : 1;
    x0 = std::floor(x0 / step + 1e-9) * step;
    x1 = std::ceil(x1 / step - 1e-9) * step;
  }
  if (ymin < ymax) {
    y0 = ymin;
    y1 = ymax;
  } else {
    if (y1 <= y0) y1 = y0 + 1;
    const double pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return kTop + (1 - (std::clamp(y, y0, y1) - y0) / (y1 - y0)) * ph; };

  std::string svg = svg_start(kWidth, kHeight, kLeft + pw / 2, title);
  const auto xt = nice_ticks(x0, x1), yt = nice_ticks(y0, y1);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double t : xt) {
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e0e0e0\"/>\n", px(t), kTop,
                       kTop + ph);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", px(t), kTop + ph + 18,
                       tick_label(t, xstep));
  }
  for (double t : yt) {
    svg += fmt::format("<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#e0e0e0\"/>\n", py(t), kLeft,
                       kLeft + pw);
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLeft - 6, py(t) + 4,
                       tick_label(t, ystep));
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", kLeft,
                     kTop, pw, ph);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", kLeft + pw / 2, kHeight - 12,
                     html_escape(x_label));
  svg += fmt::format("<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                     kTop + ph / 2, html_escape(y_label));
  // The legend goes in the corner of the plot area that the lines cross least (top right on a tie),
  // drawn last, over the lines.
  const double lw = 196, lh = 18 * static_cast<double>(series.size()) + 6;
  double lx = kLeft + pw - 198, ly0 = kTop + 2;
  {
    const std::pair<double, double> corners[] = {
        {kLeft + pw - 198, kTop + 2}, {kLeft + 2, kTop + 2}, {kLeft + pw - 198, kTop + ph - lh - 2}, {kLeft + 2, kTop + ph - lh - 2}};
    int64_t best = -1;
    for (const auto& [cx, cy] : corners) {
      int64_t hits = 0;
      for (const auto& s : series)
        for (size_t i = 0; i + 1 < s.x.size(); ++i) {
          if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || !std::isfinite(s.x[i + 1]) || !std::isfinite(s.y[i + 1]))
            continue;
          for (int k = 0; k <= 16; ++k) {  // points along each segment
            const double f = k / 16.0;
            const double x = px(s.x[i] + f * (s.x[i + 1] - s.x[i])), y = py(s.y[i] + f * (s.y[i + 1] - s.y[i]));
            hits += x >= cx && x <= cx + lw && y >= cy && y <= cy + lh;
          }
        }
      if (best < 0 || hits < best) {
        best = hits;
        lx = cx;
        ly0 = cy;
      }
    }
  }
  std::string legend;
  if (!series.empty())
    legend += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"white\" fill-opacity=\"0.85\" "
                          "stroke=\"#ccc\"/>\n",
                          lx, ly0, lw, lh);
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const char* color = kColors[k % (sizeof kColors / sizeof kColors[0])];
    std::string points;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) points += fmt::format("{:.2f},{:.2f} ", px(s.x[i]), py(s.y[i]));
    // Each series its own dash pattern too, so the lines stay apart in grey (a print, a screenshot).
    static constexpr const char* kDashes[] = {"", " stroke-dasharray=\"8,4\"", " stroke-dasharray=\"2,3\"",
                                              " stroke-dasharray=\"10,3,2,3\""};
    const char* dash = kDashes[k % 4];
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n", color, dash,
                       points);
    if (s.markers)
      for (size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
          svg += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3\" fill=\"{}\"/>\n", px(s.x[i]), py(s.y[i]), color);
    const double ly = ly0 + 14 + 18 * static_cast<double>(k);
    legend += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n",
                          lx + 8, ly - 4, lx + 32, ly - 4, color, dash);
    legend += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", lx + 38, ly, html_escape(s.label));
  }
  return svg + legend + "</svg>\n";
}

void LinePlot::write_svg(const std::string& path) const { write_file_atomically(path, to_svg()); }

std::string BarChart::to_svg() const {
  for (const auto& g : groups)
    BIRDPLANE_CHECK(g.values.size() == categories.size(), "bar group '{}' has {} values for {} categories", g.label,
                    g.values.size(), categories.size());
  double y0 = ymin, y1 = ymax;
  if (!(ymin < ymax)) {
    y0 = 0;
    y1 = 0;
    for (const auto& g : groups)
      for (double v : g.values)
        if (std::isfinite(v)) y1 = std::max(y1, v);
    y1 = y1 > 0 ? y1 * 1.05 : 1;
  }
  const double slot = 44.0 * static_cast<double>(std::max<size_t>(1, groups.size())) + 24;
  const double width = std::max(kWidth, kLeft + kRight + slot * static_cast<double>(categories.size()));
  const double pw = width - kLeft - kRight, ph = kHeight - kTop - kBottom;
  const double step = pw / static_cast<double>(std::max<size_t>(1, categories.size()));
  auto py = [&](double y) { return kTop + (1 - (std::clamp(y, y0, y1) - y0) / (y1 - y0)) * ph; };
  std::string svg = svg_start(width, kHeight, kLeft + pw / 2, title);
  const auto yt = nice_ticks(y0, y1);
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double t : yt) {
    if (t < y0 - 1e-12 || t > y1 + 1e-12) continue;
    svg += fmt::format("<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#e0e0e0\"/>\n", py(t), kLeft,
                       kLeft + pw);
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLeft - 6, py(t) + 4,
                       tick_label(t, ystep));
  }
  const double bar = (step - 24) / static_cast<double>(std::max<size_t>(1, groups.size()));
  for (size_t c = 0; c < categories.size(); ++c) {
    const double left = kLeft + step * static_cast<double>(c) + 12;
    for (size_t k = 0; k < groups.size(); ++k) {
      const double v = groups[k].values[c];
      if (!std::isfinite(v)) continue;
      const double top = py(v), x = left + bar * static_cast<double>(k);
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x, top,
                         bar - 2, kTop + ph - top, kColors[k % (sizeof kColors / sizeof kColors[0])]);
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"10\">{:.3f}</text>\n",
                         x + (bar - 2) / 2, top - 3, v);
    }
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", kLeft + step * (c + 0.5),
                       kTop + ph + 18, html_escape(categories[c]));
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", kLeft,
                     kTop, pw, ph);
  svg += fmt::format("<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                     kTop + ph / 2, html_escape(y_label));
  for (size_t k = 0; k < groups.size(); ++k) {
    const double x = kLeft + 8 + 150 * static_cast<double>(k);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n", x, kHeight - 24,
                       kColors[k % (sizeof kColors / sizeof kColors[0])]);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\">{}</text>\n", x + 16, kHeight - 14, html_escape(groups[k].label));
  }
  return svg + "</svg>\n";
}

void BarChart::write_svg(const std::string& path) const { write_file_atomically(path, to_svg()); }

std::string Table::to_markdown(int digits) const {
  std::string md;
  if (!title.empty()) md += "### " + title + "\n\n";
  md += "|";
  for (const auto& c : columns) md += " " + c + " |";
  md += "\n|";
  for (size_t i = 0; i < columns.size(); ++i) md += " --- |";
  md += "\n";
  for (const auto& row : rows) {
    md += "|";
    for (const auto& cell : row) {
      std::string text;
      if (cell.is_number()) text = format_number(cell.get<double>(), digits);
      else if (cell.is_boolean()) text = cell.get<bool>() ? "yes" : "no";
      else if (cell.is_string()) text = cell.get<std::string>();
      else text = cell.dump();
      std::string escaped;  // a '|' inside a cell would end it
      for (char ch : text) escaped += ch == '|' ? std::string("\\|") : std::string(1, ch);
      md += " " + escaped + " |";
    }
    md += "\n";
  }
  return md;
}

nlohmann::json Table::to_json() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const auto& row : rows) {
    nlohmann::json r = nlohmann::json::object();
    for (size_t i = 0; i < columns.size() && i < row.size(); ++i) r[columns[i]] = row[i];
    rows_json.push_back(r);
  }
  return {{"title", title}, {"columns", columns}, {"rows", rows_json}};
}

}  // namespace birdplane::report
