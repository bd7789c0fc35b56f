// A table of text cells as the `octopage` commands print it (Markdown, columns aligned,
// numbers right-aligned) and save it (CSV), plus the number formats its cells use.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace octopage::cli {

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each as long as the header

  void print(std::ostream& out) const;
  std::string csv() const;
};

// "12.3" (fixed decimals), "-" for NaN.
std::string fixed(double value, int decimals);
// Bytes as MiB with one decimal.
std::string mib(double bytes);
// A fraction as a signed or unsigned percentage with one decimal: "74.6%", "+0.3%".
std::string percent(double fraction, bool sign = false);

}  // namespace octopage::cli
