#include "tools/octopage/table.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace octopage::cli {
namespace {

bool is_number(const std::string& cell) {
  return !cell.empty() && (std::isdigit(static_cast<unsigned char>(cell[0])) || cell[0] == '-' || cell[0] == '+');
}

std::string csv_cell(const std::string& cell) {
  if (cell.find_first_of(",\"\n") == std::string::npos) return cell;
  std::string quoted = "\"";
  for (char c : cell) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  const auto line = [&](const std::vector<std::string>& cells, bool is_header) {
    out << "|";
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      const bool right = !is_header && c > 0 && is_number(cells[c]);
      out << " " << (right ? pad + cells[c] : cells[c] + pad) << " |";
    }
    out << "\n";
  };
  line(header, true);
  out << "|";
  for (std::size_t c = 0; c < header.size(); ++c) out << (c == 0 ? std::string(width[c] + 2, '-') + "|" : std::string(width[c] + 1, '-') + ":|");
  out << "\n";
  for (const auto& row : rows) line(row, false);
}

std::string Table::csv() const {
  std::string text;
  const auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) text += ',';
      text += csv_cell(cells[c]);
    }
    text += "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return text;
}

std::string fixed(double value, int decimals) {
  if (std::isnan(value)) return "-";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string mib(double bytes) { return fixed(bytes / (1 << 20), 1); }

std::string percent(double fraction, bool sign) {
  if (std::isnan(fraction)) return "-";
  char text[64];
  std::snprintf(text, sizeof text, sign ? "%+.1f%%" : "%.1f%%", 100 * fraction);
  return text;
}

}  // namespace octopage::cli
