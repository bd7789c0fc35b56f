// What the benchmark programs share: their command-line conventions (--flag=value or
// --flag value, usage errors exit 2), where figures go (a table on stdout, or JSON
// lines, and JSON lines to a file), and a cheap deterministic fill.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

namespace octopage::perf {

// Set once by main: the program's name and usage text, for usage_error.
inline const char* g_program = "octopage";
inline const char* g_usage = "";

[[noreturn]] inline void usage_error(const std::string& message) {
  std::cerr << g_program << ": " << message << "\n\n" << g_usage;
  std::exit(2);
}

// argv[i] as flag and value: "--flag=value", or "--flag value" (taking argv[i + 1]) for
// a flag that takes a value.
inline std::pair<std::string_view, std::string_view> next_flag(int argc, char** argv, int& i,
                                                               bool takes_value) {
  const std::string_view arg = argv[i];
  const auto eq = arg.find('=');
  const std::string_view flag = arg.substr(0, eq);
  std::string_view value = eq == std::string_view::npos ? "" : arg.substr(eq + 1);
  if (takes_value && eq == std::string_view::npos && i + 1 < argc) value = argv[++i];
  return {flag, value};
}

// --format=table|jsonl and --jsonl=PATH; returns false for any other flag.
struct OutputOptions {
  bool jsonl_stdout = false;
  std::string jsonl_path;

  bool parse(std::string_view flag, std::string_view value) {
    if (flag == "--format") {
      if (value != "table" && value != "jsonl") {
        usage_error("expected --format=table or --format=jsonl, got '" + std::string(value) + "'");
      }
      jsonl_stdout = value == "jsonl";
      return true;
    }
    if (flag == "--jsonl") {
      if (value.empty()) usage_error("expected --jsonl=PATH");
      jsonl_path = value;
      return true;
    }
    return false;
  }
};

// Where every figure goes: a human table on stdout (or JSON lines), and JSON lines to a
// file when asked.
class Output {
 public:
  explicit Output(const OutputOptions& options) : jsonl_stdout_(options.jsonl_stdout) {
    if (!options.jsonl_path.empty()) {
      file_.open(options.jsonl_path);
      if (!file_) usage_error("cannot write --jsonl file '" + options.jsonl_path + "'");
    }
  }
  bool table() const { return !jsonl_stdout_; }
  void record(const nlohmann::json& line) {
    if (jsonl_stdout_) std::cout << line.dump() << std::endl;
    if (file_.is_open()) file_ << line.dump() << std::endl;
  }
  template <class... Args>
  void print(const char* format, Args... args) {
    if (!table()) return;
    std::printf(format, args...);
    std::fflush(stdout);
  }

 private:
  bool jsonl_stdout_;
  std::ofstream file_;
};

// A deterministic, cheap fill: values in [-scale, scale).
inline float hash_value(std::uint64_t i, std::uint64_t seed, float scale) {
  std::uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return scale * (static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

}  // namespace octopage::perf
