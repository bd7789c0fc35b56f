#include "tools/octopage/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace octopage::cli {

void parse_flags(int argc, char** argv, int first, const std::vector<Flag>& flags) {
  for (int i = first; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const std::size_t eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    const Flag* flag = nullptr;
    for (const Flag& f : flags) {
      if (f.name == name) flag = &f;
    }
    if (flag == nullptr || !arg.starts_with("--")) {
      throw UsageError("unknown option '" + std::string(arg) + "'");
    }
    if (!flag->takes_value) {
      if (eq != std::string_view::npos) throw UsageError(std::string(name) + " takes no value");
      flag->set("");
      continue;
    }
    std::string_view value;
    if (eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw UsageError("expected a value after " + std::string(name));
    }
    flag->set(value);
  }
}

std::int64_t parse_integer(std::string_view flag, std::string_view text, std::int64_t min, std::int64_t max) {
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE || n < min || n > max) {
    std::string range = ">= " + std::to_string(min);
    if (max != INT64_MAX) range = "in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    throw UsageError("expected " + std::string(flag) + " to be a whole number " + range + ", got '" + s + "'");
  }
  return n;
}

double parse_positive(std::string_view flag, std::string_view text, bool zero_ok) {
  const std::string s(text);
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(x) || x < 0 || (x == 0 && !zero_ok)) {
    throw UsageError("expected " + std::string(flag) + " to be a number " + (zero_ok ? ">= 0" : "> 0") +
                     ", got '" + s + "'");
  }
  return x;
}

std::vector<std::string> parse_list(std::string_view flag, std::string_view text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    if (item.empty()) throw UsageError("expected " + std::string(flag) + " to be a comma-separated list, got '" +
                                       std::string(text) + "'");
    items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return items;
}

void check_device(std::string_view device) {
  if (device == "cpu") return;
  if (device == "cuda") {
    throw std::runtime_error("--device cuda: this build of octopage has no CUDA backend; use --device cpu");
  }
  throw UsageError("expected --device cpu or cuda, got '" + std::string(device) + "'");
}

}  // namespace octopage::cli
