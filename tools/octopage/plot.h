// PNG charts for `octopage demo`: loss curves as a line chart and memory per optimizer as
// stacked bars, each a 960 x 600 PNG drawn with Cairo. Not a plotting library: one fixed
// look, no styling options, no log axes, no other output formats.
#pragma once

#include <string>
#include <vector>

namespace octopage::cli {

// One curve of a line chart: points (x[i], y[i]), x ascending; NaN/inf y values are skipped
// (the curve has a gap there).
struct LineSeries {
  std::string name;
  std::vector<double> x, y;
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<LineSeries> series;
};

// Stacked bars: one bar per entry of `bars` (left to right), each made of `segments`
// stacked bottom to top; values[bar][segment] >= 0.
struct BarChart {
  std::string title, y_label;
  std::vector<std::string> bars;
  std::vector<std::string> segments;
  std::vector<std::vector<double>> values;
};

// Write the chart as a PNG of 960 x 600 pixels. Throw std::runtime_error naming the path
// and Cairo's status text when the file cannot be written, and std::invalid_argument for
// malformed input (x/y length mismatch, x not finite and ascending, values not
// bars x segments, negative or non-finite bar values).
void write_line_chart(const std::string& path, const LineChart& chart);
void write_bar_chart(const std::string& path, const BarChart& chart);

}  // namespace octopage::cli
