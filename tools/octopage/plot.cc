// Line and stacked-bar charts drawn on a Cairo image surface with Cairo's toy text API
// ("DejaVu Sans" through fontconfig). The layout is fixed for a 960 x 600 canvas and a
// handful of series: legends sit outside the plot area on the right, ticks fall on
// 1/2/5 x 10^k. Not a general plotting library: no options, no log axes, no SVG.
#include "tools/octopage/plot.h"

#include <cairo.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <numeric>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace octopage::cli {
namespace {

constexpr int kWidth = 960;
constexpr int kHeight = 600;
constexpr char kFontFamily[] = "DejaVu Sans";
constexpr double kTitleSize = 20, kLabelSize = 14, kTickSize = 12.5, kMinFontSize = 8;
constexpr double kMargin = 16;       // between the canvas edge and any text
constexpr double kTickLength = 5;
constexpr double kLegendGap = 28;    // between the plot area and the legend
constexpr double kSwatchWidth = 40;  // a legend entry's sample
constexpr double kMaxLegendText = 230;
constexpr double kMarkerRadius = 4.5;

struct Rgb {
  double r, g, b;
};

// Okabe-Ito, the first four well apart on white; yellow last, it is faint on white.
constexpr std::array<Rgb, 8> kPalette = {{{0.000, 0.447, 0.698},    // blue
                                          {0.902, 0.624, 0.000},    // orange
                                          {0.000, 0.620, 0.451},    // bluish green
                                          {0.800, 0.475, 0.655},    // reddish purple
                                          {0.835, 0.369, 0.000},    // vermillion
                                          {0.337, 0.706, 0.914},    // sky blue
                                          {0.000, 0.000, 0.000},    // black
                                          {0.941, 0.894, 0.259}}};  // yellow
constexpr Rgb kInk = {0.15, 0.15, 0.15}, kAxisInk = {0.35, 0.35, 0.35};
constexpr Rgb kGridInk = {0.89, 0.89, 0.89}, kWhite = {1, 1, 1};

// An opaque white canvas; the surface and context are released on every path out.
class Canvas {
 public:
  Canvas()
      : surface_(cairo_image_surface_create(CAIRO_FORMAT_RGB24, kWidth, kHeight),
                 cairo_surface_destroy),
        cr_(cairo_create(surface_.get()), cairo_destroy) {
    if (cairo_status(cr_.get()) != CAIRO_STATUS_SUCCESS) {
      throw std::runtime_error(std::string("cannot create a chart canvas: ") +
                               cairo_status_to_string(cairo_status(cr_.get())));
    }
    cairo_set_source_rgb(cr_.get(), 1, 1, 1);
    cairo_paint(cr_.get());
    cairo_set_line_width(cr_.get(), 1);
  }

  cairo_t* get() const { return cr_.get(); }

  void write_png(const std::string& path) const {
    cairo_status_t status = cairo_status(cr_.get());
    errno = 0;
    if (status == CAIRO_STATUS_SUCCESS) {
      status = cairo_surface_write_to_png(surface_.get(), path.c_str());
    }
    const int write_errno = errno;
    if (status == CAIRO_STATUS_SUCCESS) return;
    std::string message = "cannot write chart '" + path + "': " + cairo_status_to_string(status);
    if (write_errno != 0) message += " (" + std::generic_category().message(write_errno) + ")";
    throw std::runtime_error(message);
  }

 private:
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface_;
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr_;
};

void set_color(cairo_t* cr, const Rgb& c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

void stroke_line(cairo_t* cr, const Rgb& color, double x0, double y0, double x1, double y1) {
  set_color(cr, color);
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x1, y1);
  cairo_stroke(cr);
}

void set_font(cairo_t* cr, double size, bool bold = false) {
  cairo_select_font_face(cr, kFontFamily, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double text_width(cairo_t* cr, const std::string& text) {
  cairo_text_extents_t extents;
  cairo_text_extents(cr, text.c_str(), &extents);
  return extents.x_advance;
}

double widest_text(cairo_t* cr, const std::vector<std::string>& texts) {
  double widest = 0;
  for (const std::string& text : texts) widest = std::max(widest, text_width(cr, text));
  return widest;
}

double line_height(cairo_t* cr) {
  cairo_font_extents_t extents;
  cairo_font_extents(cr, &extents);
  return extents.height;
}

// Selects and returns the largest font size, at most `size`, at which `texts` fit `width`.
double fit_font(cairo_t* cr, const std::vector<std::string>& texts, double size, double width,
                bool bold = false) {
  for (set_font(cr, size, bold); size > kMinFontSize && widest_text(cr, texts) > width;) {
    set_font(cr, size -= 0.5, bold);
  }
  return size;
}

enum class Align { kStart, kCenter, kEnd };

// Draws `text` anchored horizontally at x by `align`, with the middle of its capitals at y.
void draw_text(cairo_t* cr, const std::string& text, double x, double y, Align align) {
  cairo_font_extents_t font;
  cairo_font_extents(cr, &font);
  const double shift = align == Align::kStart ? 0 : align == Align::kCenter ? 0.5 : 1;
  cairo_move_to(cr, x - shift * text_width(cr, text), y + (font.ascent - font.descent) / 2);
  cairo_show_text(cr, text.c_str());
}

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string shortest(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

// A value axis: the range the plot area spans and its ticks at multiples of `step`.
struct Axis {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> ticks;
  std::vector<std::string> labels;
};

// Ticks at 1, 2 or 5 x 10^k, about `target_ticks` of them in [lo, hi].
Axis make_axis(double lo, double hi, int target_ticks) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / target_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  const double step = (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude;
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  const double first = std::ceil(lo / step - 1e-9), count = std::floor(hi / step + 1e-9) - first;
  Axis axis{lo, hi, step, {}, {}};
  for (int i = 0; i <= count && i <= 2 * target_ticks; ++i) {  // bounded where step ~ ulp(lo)
    axis.ticks.push_back(first + i == 0 ? 0.0 : (first + i) * step);
    axis.labels.push_back(fixed(axis.ticks.back(), decimals));
  }
  return axis;
}

struct Rect {
  double left, top, right, bottom;
  double width() const { return right - left; }
  double height() const { return bottom - top; }
};

double x_px(const Rect& plot, const Axis& axis, double x) {
  return plot.left + (x - axis.lo) / (axis.hi - axis.lo) * plot.width();
}
double y_px(const Rect& plot, const Axis& axis, double y) {
  return plot.bottom - (y - axis.lo) / (axis.hi - axis.lo) * plot.height();
}
double crisp(double px) { return std::round(px) + 0.5; }  // the centre of a 1-pixel line

// Plot-area edges that leave room for the title, the y axis's labels and the legend.
double plot_top(const std::string& title) { return title.empty() ? 24 : 60; }
double plot_left(cairo_t* cr, const Axis& y_axis, const std::string& y_label) {
  set_font(cr, kLabelSize);
  const double label_room = y_label.empty() ? 0 : line_height(cr) + 8;
  set_font(cr, kTickSize);
  return kMargin + label_room + widest_text(cr, y_axis.labels) + 6 + kTickLength;
}
double plot_right(double legend_width) {
  return kWidth - kMargin - (legend_width > 0 ? legend_width + kLegendGap : 12);
}

void draw_title(cairo_t* cr, const std::string& title) {
  fit_font(cr, {title}, kTitleSize, kWidth - 2 * kMargin, true);
  set_color(cr, kInk);
  draw_text(cr, title, kWidth / 2.0, 30, Align::kCenter);
}

void draw_y_axis(cairo_t* cr, const Rect& plot, const Axis& axis, const std::string& label) {
  set_font(cr, kTickSize);
  for (std::size_t i = 0; i < axis.ticks.size(); ++i) {
    const double y = crisp(y_px(plot, axis, axis.ticks[i]));
    stroke_line(cr, kGridInk, plot.left, y, plot.right, y);
    stroke_line(cr, kAxisInk, plot.left - kTickLength, y, plot.left, y);
    set_color(cr, kInk);
    draw_text(cr, axis.labels[i], plot.left - kTickLength - 6, y, Align::kEnd);
  }
  set_font(cr, kLabelSize);
  cairo_save(cr);
  cairo_translate(cr, kMargin + line_height(cr) / 2, (plot.top + plot.bottom) / 2);
  cairo_rotate(cr, -std::numbers::pi / 2);
  draw_text(cr, label, 0, 0, Align::kCenter);
  cairo_restore(cr);
}

void draw_x_axis(cairo_t* cr, const Rect& plot, const Axis& axis, const std::string& label) {
  set_font(cr, kTickSize);
  const double label_y = plot.bottom + kTickLength + 4 + line_height(cr) / 2;
  for (std::size_t i = 0; i < axis.ticks.size(); ++i) {
    const double x = crisp(x_px(plot, axis, axis.ticks[i]));
    stroke_line(cr, kGridInk, x, plot.top, x, plot.bottom);
    stroke_line(cr, kAxisInk, x, plot.bottom, x, plot.bottom + kTickLength);
    set_color(cr, kInk);
    draw_text(cr, axis.labels[i], x, label_y, Align::kCenter);
  }
  set_font(cr, kLabelSize);
  const double y = kHeight - kMargin - line_height(cr) / 2;
  draw_text(cr, label, (plot.left + plot.right) / 2, y, Align::kCenter);
}

// The left and bottom axis lines, drawn over the grid and the data.
void draw_axis_lines(cairo_t* cr, const Rect& plot) {
  stroke_line(cr, kAxisInk, crisp(plot.left), plot.top, crisp(plot.left), crisp(plot.bottom));
  stroke_line(cr, kAxisInk, crisp(plot.left), crisp(plot.bottom), plot.right, crisp(plot.bottom));
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  for (std::size_t start = 0, end = 0; start < text.size(); start = end + 1) {
    end = std::min(text.find(' ', start), text.size());
    if (end > start) words.push_back(text.substr(start, end - start));
  }
  return words;
}

// Texts in one font size, each wrapped at spaces into lines of at most `width` pixels
// where it can be: the size shrinks, down to kMinFontSize, until every word fits.
struct WrappedTexts {
  double font_size;
  std::vector<std::vector<std::string>> lines;
  std::size_t most_lines = 1;
};

WrappedTexts wrap_texts(cairo_t* cr, const std::vector<std::string>& texts, double size,
                        double width) {
  std::vector<std::string> words;
  for (const std::string& text : texts) {
    for (std::string& word : split_words(text)) words.push_back(std::move(word));
  }
  WrappedTexts wrapped{fit_font(cr, words, size, width), {}};
  for (const std::string& text : texts) {
    std::vector<std::string> lines;
    for (const std::string& word : split_words(text)) {
      if (!lines.empty() && text_width(cr, lines.back() + " " + word) <= width) {
        lines.back() += " " + word;
      } else {
        lines.push_back(word);
      }
    }
    if (lines.empty()) lines.emplace_back();
    wrapped.most_lines = std::max(wrapped.most_lines, lines.size());
    wrapped.lines.push_back(std::move(lines));
  }
  return wrapped;
}

// A legend: an entry per name, its sample drawn by `draw_swatch(index, left, middle_y)`
// beside the name's first line.
struct Legend {
  std::vector<std::string> names;
  std::function<void(std::size_t, double, double)> draw_swatch;
  WrappedTexts text{};

  double width(cairo_t* cr) {
    if (names.empty()) return 0;
    text = wrap_texts(cr, names, 13, kMaxLegendText);
    double widest = 0;
    for (const auto& lines : text.lines) widest = std::max(widest, widest_text(cr, lines));
    return kSwatchWidth + 10 + widest;
  }

  void draw(cairo_t* cr, double left, double top) const {
    set_font(cr, text.font_size);
    const double row = line_height(cr);
    double y = top + row / 2;
    for (std::size_t i = 0; i < text.lines.size(); ++i) {
      draw_swatch(i, left, y);
      set_font(cr, text.font_size);
      set_color(cr, kInk);
      for (const std::string& line : text.lines[i]) {
        draw_text(cr, line, left + kSwatchWidth + 10, y, Align::kStart);
        y += row;
      }
      y += 9;
    }
  }
};

// Line chart. Series i is drawn over series i-1, thinner, with its own dash and its own
// marker shape at x positions staggered between series, so that curves which coincide
// exactly still show every entry of the legend.

constexpr std::size_t kMarkersPerSeries = 10;

struct LineStyle {
  Rgb color;
  double width;
  std::vector<double> dashes;
  std::size_t marker;  // an index into kMarkerOutlines
};

// Marker outlines in units of kMarkerRadius: circle (no vertices), square, triangle, diamond.
struct Outline {
  int count;
  std::array<std::array<double, 2>, 4> vertices;
};
constexpr std::array<Outline, 4> kMarkerOutlines = {
    {{0, {}},
     {4, {{{-0.85, -0.85}, {0.85, -0.85}, {0.85, 0.85}, {-0.85, 0.85}}}},
     {3, {{{0, -1.2}, {1.05, 0.65}, {-1.05, 0.65}}}},
     {4, {{{0, -1.25}, {1, 0}, {0, 1.25}, {-1, 0}}}}}};

LineStyle line_style(std::size_t index) {
  static const std::array<std::vector<double>, 4> kDashes = {
      {{}, {18, 7}, {3, 6}, {12, 5, 3, 5}}};
  return {kPalette[index % kPalette.size()], std::max(1.3, 3.6 - 0.8 * index),
          kDashes[index % kDashes.size()], index % 4};
}

void stroke_styled(cairo_t* cr, const LineStyle& style) {
  set_color(cr, style.color);
  cairo_set_line_width(cr, style.width);
  cairo_set_dash(cr, style.dashes.data(), static_cast<int>(style.dashes.size()), 0);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_stroke(cr);
  cairo_set_dash(cr, nullptr, 0, 0);
  cairo_set_line_width(cr, 1);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
}

// A filled marker with a white rim, which keeps it apart from the lines under it.
void draw_marker(cairo_t* cr, const LineStyle& style, double x, double y) {
  cairo_new_sub_path(cr);
  const Outline& outline = kMarkerOutlines[style.marker % kMarkerOutlines.size()];
  if (outline.count == 0) cairo_arc(cr, x, y, kMarkerRadius, 0, 2 * std::numbers::pi);
  for (int i = 0; i < outline.count; ++i) {
    const auto [dx, dy] = outline.vertices[i];
    cairo_line_to(cr, x + dx * kMarkerRadius, y + dy * kMarkerRadius);
  }
  cairo_close_path(cr);
  set_color(cr, style.color);
  cairo_fill_preserve(cr);
  set_color(cr, kWhite);
  cairo_stroke(cr);
}

void validate(const LineChart& chart) {
  for (const LineSeries& s : chart.series) {
    if (s.x.size() != s.y.size()) {
      throw std::invalid_argument("write_line_chart: expected series '" + s.name +
                                  "' to have as many y values as x values (" +
                                  std::to_string(s.x.size()) + "), got " +
                                  std::to_string(s.y.size()));
    }
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || (i > 0 && s.x[i] < s.x[i - 1])) {
        throw std::invalid_argument("write_line_chart: expected the x values of series '" +
                                    s.name + "' finite and ascending, got x[" +
                                    std::to_string(i) + "] = " + shortest(s.x[i]));
      }
    }
  }
}

// x spans all points; y spans the finite ones with 4% to spare on each side.
std::array<Axis, 2> line_axes(const LineChart& chart) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  for (const LineSeries& s : chart.series) {
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
      if (std::isfinite(s.y[i])) y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
    }
  }
  if (x_lo > x_hi) x_lo = 0, x_hi = 1;
  if (y_lo > y_hi) y_lo = 0, y_hi = 1;
  const double pad = 0.04 * (y_hi - y_lo);
  return {make_axis(x_lo, x_hi, 8), make_axis(y_lo - pad, y_hi + pad, 7)};
}

// Fewer x ticks until neighbouring tick labels keep a clear gap between them.
Axis fit_x_axis(cairo_t* cr, const Axis& axis, double plot_width) {
  set_font(cr, kTickSize);
  Axis fitted = axis;
  for (int target = 8; target > 1; --target) {
    fitted = make_axis(axis.lo, axis.hi, target);
    const double spacing = fitted.step / (fitted.hi - fitted.lo) * plot_width;
    if (spacing >= widest_text(cr, fitted.labels) + 16) break;
  }
  return fitted;
}

// Finite runs of points as polylines; a non-finite y leaves a gap.
void trace_series(cairo_t* cr, const Rect& plot, const Axis& x_axis, const Axis& y_axis,
                  const LineSeries& s) {
  for (std::size_t i = 0; i < s.x.size(); ++i) {
    if (!std::isfinite(s.y[i])) continue;
    const double x = x_px(plot, x_axis, s.x[i]), y = y_px(plot, y_axis, s.y[i]);
    if (i == 0 || !std::isfinite(s.y[i - 1])) cairo_move_to(cr, x, y);
    cairo_line_to(cr, x, y);
  }
}

// Every finite point of a short series; else about kMarkersPerSeries points, shifted along
// x by the series' index so that markers of coinciding curves do not cover each other.
std::vector<std::size_t> marker_points(const LineSeries& s, const Axis& x_axis,
                                       std::size_t index, std::size_t count) {
  const bool every = s.x.size() <= kMarkersPerSeries;
  std::vector<std::size_t> points;
  for (std::size_t k = 0; k < (every ? s.x.size() : kMarkersPerSeries); ++k) {
    const double shift = (static_cast<double>(index) + 0.5) / static_cast<double>(count);
    const double x = x_axis.lo + (x_axis.hi - x_axis.lo) * (k + shift) / kMarkersPerSeries;
    const std::size_t at = every ? k : std::lower_bound(s.x.begin(), s.x.end(), x) - s.x.begin();
    if (at < s.x.size() && std::isfinite(s.y[at]) && (points.empty() || points.back() != at)) {
      points.push_back(at);
    }
  }
  return points;
}

void draw_line_data(cairo_t* cr, const Rect& plot, const Axis& x_axis, const Axis& y_axis,
                    const std::vector<LineSeries>& series) {
  for (std::size_t i = 0; i < series.size(); ++i) {
    trace_series(cr, plot, x_axis, y_axis, series[i]);
    stroke_styled(cr, line_style(i));
  }
  for (std::size_t i = 0; i < series.size(); ++i) {
    for (std::size_t at : marker_points(series[i], x_axis, i, series.size())) {
      draw_marker(cr, line_style(i), x_px(plot, x_axis, series[i].x[at]),
                  y_px(plot, y_axis, series[i].y[at]));
    }
  }
}

// Bar chart.

void validate(const BarChart& chart) {
  if (chart.values.size() != chart.bars.size()) {
    throw std::invalid_argument("write_bar_chart: expected one row of values per bar (" +
                                std::to_string(chart.bars.size()) + "), got " +
                                std::to_string(chart.values.size()));
  }
  for (std::size_t b = 0; b < chart.values.size(); ++b) {
    if (chart.values[b].size() != chart.segments.size()) {
      throw std::invalid_argument("write_bar_chart: expected bar '" + chart.bars[b] +
                                  "' to have " + std::to_string(chart.segments.size()) +
                                  " segment values, got " +
                                  std::to_string(chart.values[b].size()));
    }
    for (std::size_t s = 0; s < chart.segments.size(); ++s) {
      const double value = chart.values[b][s];
      if (!(value >= 0) || !std::isfinite(value)) {
        throw std::invalid_argument("write_bar_chart: expected finite values >= 0, got " +
                                    shortest(value) + " for bar '" + chart.bars[b] +
                                    "', segment '" + chart.segments[s] + "'");
      }
    }
  }
}

double total_of(const std::vector<double>& row) {
  return std::accumulate(row.begin(), row.end(), 0.0);
}

// From 0 to a tick above the tallest bar, with room for the total written above it.
Axis bar_axis(const BarChart& chart) {
  double tallest = 0;
  for (const std::vector<double>& row : chart.values) tallest = std::max(tallest, total_of(row));
  if (tallest == 0) return make_axis(0, 1, 5);
  const double step = make_axis(0, tallest * 1.1, 6).step;
  return make_axis(0, std::ceil(tallest * 1.1 / step) * step, 6);
}

// One stacked bar, white seams between its segments, and its total above it.
void draw_bar(cairo_t* cr, const Rect& plot, const Axis& axis, const std::vector<double>& row,
              double centre, double width) {
  const double left = std::round(centre - width / 2), right = std::round(centre + width / 2);
  double base = 0;
  for (std::size_t s = 0; s < row.size(); ++s) {
    if (row[s] == 0) continue;
    const double bottom = std::round(y_px(plot, axis, base));
    const double top = std::round(y_px(plot, axis, base += row[s]));
    set_color(cr, kPalette[s % kPalette.size()]);
    cairo_rectangle(cr, left, top, right - left, bottom - top);
    cairo_fill(cr);
    if (bottom < std::round(plot.bottom)) {
      stroke_line(cr, kWhite, left, bottom - 0.5, right, bottom - 0.5);
    }
  }
  set_font(cr, kTickSize, true);
  set_color(cr, kInk);
  draw_text(cr, fixed(base, base >= 1000 ? 0 : base >= 1 || base == 0 ? 1 : 3), centre,
            y_px(plot, axis, base) - 12, Align::kCenter);
}

void draw_bar_labels(cairo_t* cr, const Rect& plot, const WrappedTexts& labels, double slot) {
  set_font(cr, labels.font_size);
  set_color(cr, kInk);
  const double row = line_height(cr);
  for (std::size_t b = 0; b < labels.lines.size(); ++b) {
    for (std::size_t l = 0; l < labels.lines[b].size(); ++l) {
      draw_text(cr, labels.lines[b][l], plot.left + slot * (b + 0.5),
                plot.bottom + 10 + row * (l + 0.5), Align::kCenter);
    }
  }
}

}  // namespace

void write_line_chart(const std::string& path, const LineChart& chart) {
  validate(chart);
  Canvas canvas;
  cairo_t* cr = canvas.get();
  auto [x_axis, y_axis] = line_axes(chart);
  Legend legend;
  for (const LineSeries& s : chart.series) legend.names.push_back(s.name);
  legend.draw_swatch = [cr](std::size_t i, double left, double y) {
    cairo_move_to(cr, left + 2, y);
    cairo_line_to(cr, left + kSwatchWidth - 2, y);
    stroke_styled(cr, line_style(i));
    draw_marker(cr, line_style(i), left + kSwatchWidth / 2, y);
  };
  set_font(cr, kTickSize);
  const double tick_room = kTickLength + 4 + line_height(cr);
  set_font(cr, kLabelSize);
  const double x_label_room = chart.x_label.empty() ? 0 : line_height(cr) + 6;
  const Rect plot{plot_left(cr, y_axis, chart.y_label), plot_top(chart.title),
                  plot_right(legend.width(cr)), kHeight - kMargin - x_label_room - tick_room};
  x_axis = fit_x_axis(cr, x_axis, plot.width());

  draw_title(cr, chart.title);
  draw_y_axis(cr, plot, y_axis, chart.y_label);
  draw_x_axis(cr, plot, x_axis, chart.x_label);
  draw_line_data(cr, plot, x_axis, y_axis, chart.series);
  draw_axis_lines(cr, plot);
  legend.draw(cr, plot.right + kLegendGap, plot.top);
  canvas.write_png(path);
}

void write_bar_chart(const std::string& path, const BarChart& chart) {
  validate(chart);
  Canvas canvas;
  cairo_t* cr = canvas.get();
  const Axis axis = bar_axis(chart);
  Legend legend;  // segments top to bottom, as they are stacked
  legend.names.assign(chart.segments.rbegin(), chart.segments.rend());
  legend.draw_swatch = [cr, n = chart.segments.size()](std::size_t i, double left, double y) {
    set_color(cr, kPalette[(n - 1 - i) % kPalette.size()]);
    cairo_rectangle(cr, left + kSwatchWidth - 22, std::round(y - 8), 16, 16);
    cairo_fill(cr);
  };
  const double left = plot_left(cr, axis, chart.y_label), right = plot_right(legend.width(cr));
  const double slot = (right - left) / std::max(static_cast<double>(chart.bars.size()), 1.0);
  const WrappedTexts labels = wrap_texts(cr, chart.bars, kTickSize, slot - 10);
  set_font(cr, labels.font_size);
  const double label_room = 10 + line_height(cr) * static_cast<double>(labels.most_lines);
  const Rect plot{left, plot_top(chart.title), right, kHeight - kMargin - label_room};

  draw_title(cr, chart.title);
  draw_y_axis(cr, plot, axis, chart.y_label);
  for (std::size_t b = 0; b < chart.bars.size(); ++b) {
    const double centre = plot.left + slot * (b + 0.5);
    draw_bar(cr, plot, axis, chart.values[b], centre, std::min(slot * 0.6, 120.0));
  }
  draw_bar_labels(cr, plot, labels, slot);
  draw_axis_lines(cr, plot);
  legend.draw(cr, plot.right + kLegendGap, plot.top);
  canvas.write_png(path);
}

}  // namespace octopage::cli
