// The rule registry as the engine reads it: for each registered rule, its public
// description (octopage/rules.h), its hyperparameters' specs, and the functions that
// turn a group's resolved hyperparameters into a kernel row and per-step scalars.
// Names no rule: every rule is a line of src/rules/registry.inc.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "octopage/rules.h"
#include "src/rules/rule.h"

namespace octopage::rules {

#include "src/rules/registry.inc"

inline constexpr int kNumRows = RowCount<RegisteredRules>::value;

struct RuleEntry {
  RuleInfo info;
  std::vector<HyperSpec> hyperparameters;
  int num_slots = 0;   // resolved values: the hyperparameters' arities summed
  int first_row = 0;   // its rows in the kernel table: [first_row, first_row + num_rows)
  int num_rows = 0;
  // The row (relative to first_row) that a group's resolved values select.
  int (*row)(const double* values) = nullptr;
  // What is wrong with a combination of values that are each in range (nullptr: nothing).
  const char* (*check)(const double* values) = nullptr;
  // The row's scalars for step t >= 1 (row relative to first_row).
  RuleScalars (*scalars)(const double* values, int row, std::int64_t t) = nullptr;
  // max_unorm (RULES.md 1.8): ||u||^2 of bitsandbytes' u from the sum of the row's
  // direction() squared, and the clipping scale folded into a step's scalars.
  double (*step_norm2)(const double* values, int row, std::int64_t t, double direction_norm2) = nullptr;
  void (*scale_step)(RuleScalars& scalars, float scale) = nullptr;
  // The rule's fp64 oracle (for tests): step t of one element with gradient g, p and
  // the row's states updated in place; returns the gradient its moments saw.
  double (*oracle)(const double* values, int row, std::int64_t t, double g, double& p, double* state) = nullptr;
};

// Every registered rule, in registry order; entries live as long as the program.
const std::vector<RuleEntry>& rule_entries();
// The rule called `name`; throws Error(kInvalidArgument) naming the registered rules.
const RuleEntry& rule_entry(std::string_view name);
// What kernel row `row` (of kNumRows) keeps.
const RowSpec& row_spec(int row);

}  // namespace octopage::rules
