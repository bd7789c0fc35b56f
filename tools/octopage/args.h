// Command-line flags of the `octopage` subcommands: "--flag value" or "--flag=value",
// a table of flags per subcommand, and the errors a user sees for bad ones (UsageError:
// main prints it with the subcommand's usage and exits 2).
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace octopage::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Flag {
  std::string name;                              // "--steps"
  std::function<void(std::string_view)> set;     // given the value ("" for a switch)
  bool takes_value = true;
};

// Parses argv[first, argc) against `flags`; throws UsageError for an unknown flag or a
// missing value.
void parse_flags(int argc, char** argv, int first, const std::vector<Flag>& flags);

// "--steps" "300" -> 300; UsageError unless a whole number in [min, max].
std::int64_t parse_integer(std::string_view flag, std::string_view text, std::int64_t min,
                           std::int64_t max = INT64_MAX);
// A finite number > 0 (or >= 0 when zero_ok).
double parse_positive(std::string_view flag, std::string_view text, bool zero_ok = false);
// "a,b,c" -> {"a", "b", "c"}; UsageError when empty.
std::vector<std::string> parse_list(std::string_view flag, std::string_view text);

// --device: "cpu"; "cuda" is refused with its reason until octopage has a CUDA backend
// (std::runtime_error); anything else is a UsageError.
void check_device(std::string_view device);

}  // namespace octopage::cli
