// The API edge's input checks: each throws octopage::Error with what was expected and
// what was found, before anything is modified.
#pragma once

#include <cstddef>
#include <vector>

#include "octopage/optimizer.h"

namespace octopage::engine {

struct ParamState;

// `group` is a param group's index, or kDefaults for an optimizer's defaults.
inline constexpr std::size_t kDefaults = static_cast<std::size_t>(-1);
void check_group_options(const GroupOptions& options, std::size_t group);
// The parameter, its gradient and its overrides of `options`. `cuda_memory`: also ask the
// CUDA runtime whether a cuda buffer's address is device memory on the current device,
// which costs a driver call per buffer: done when a parameter is added and at its first
// step, not on every step (Note [Checking CUDA buffers]).
void check_parameter(const Parameter& param, const GroupOptions& options, std::size_t group,
                     std::size_t index, bool cuda_memory = true);
// An existing state must still fit its parameter and the group's options.
void check_state_fits(const ParamState& state, const Parameter& param, const GroupOptions& options,
                      std::size_t group, std::size_t index);

// A state to load into a parameter of `numel` elements (Note [Loading state]): its
// arrays have the sizes of its format, and it has a max_exp_avg_sq when `amsgrad`.
void check_loaded_state(const StateSnapshot& state, std::int64_t numel, bool amsgrad,
                        std::size_t group, std::size_t index);

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
