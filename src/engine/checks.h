// The API edge's input checks: each throws octopage::Error with what was expected and
// what was found, before anything is modified.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "octopage/optimizer.h"
#include "src/rules/registry.h"

namespace octopage::engine {

struct ParamState;

// A group's options checked against its rule: every hyperparameter's values, in the
// rule's slots (unset ones from `defaults`, then from the rule), and the kernel row they
// select (an index of the kernel table, not relative to the rule's first row).
struct Resolved {
  std::vector<double> values;
  int row = 0;
};

// Steps of percentile_clipping's history (Note [Percentile clipping]).
inline constexpr std::size_t kGnormHistory = 100;

// `group` is a param group's index, or kDefaults for an optimizer's defaults.
inline constexpr std::size_t kDefaults = static_cast<std::size_t>(-1);
// `param`: the options are a parameter's (its group's under its overrides), for messages.
Resolved check_group_options(const rules::RuleEntry& rule, const GroupOptions& options,
                             const GroupOptions* defaults, std::size_t group,
                             std::optional<std::size_t> param = std::nullopt);
// The parameter, its gradient and its overrides of `options`, whose resolved row is
// `row`. `cuda_memory`: also ask the CUDA runtime whether a cuda buffer's address is
// device memory on the current device, which costs a driver call per buffer: done when a
// parameter is added and at its first step, not on every step (Note [Checking CUDA
// buffers]).
void check_parameter(const Parameter& param, const GroupOptions& options, int row, std::size_t group,
                     std::size_t index, bool cuda_memory = true);
// The options a parameter steps with: its group's under its overrides' hyperparameters,
// min_8bit_size and max_unorm (optim_bits and placement are read from the overrides where
// a state is made). Whether it has any to apply: has_option_overrides.
bool has_option_overrides(const ParamOverrides& overrides);
GroupOptions overridden(GroupOptions options, const ParamOverrides& overrides);
// A parameter's overridden options (has_option_overrides), checked against its rule and
// its group's row; the resolved values.
Resolved check_overridden_options(const rules::RuleEntry& rule, const GroupOptions& options,
                                  const GroupOptions* defaults, int group_row, std::size_t group, std::size_t index);
// An existing state must still fit its parameter and the group's row.
void check_state_fits(const ParamState& state, const Parameter& param, int row, std::size_t group,
                      std::size_t index);

// A state to load into a parameter of `numel` elements whose group selects `row`
// (Note [Loading state]): every array is one of the rule's states, has the sizes of the
// snapshot's format, and each state of the row is there.
void check_loaded_state(const StateSnapshot& state, std::int64_t numel, const rules::RuleEntry& rule,
                        int row, std::size_t group, std::size_t index);

// Where a parameter's buffer lies, for the no-overlap check.
struct ParamSpan {
  const char* begin;
  const char* end;
  std::size_t group;
  std::size_t index;
};
ParamSpan span_of(const Parameter& param, std::size_t group, std::size_t index);
// No two parameters may share memory (a parameter listed twice is the usual case).
void check_no_overlap(std::vector<ParamSpan> spans);

}  // namespace octopage::engine
