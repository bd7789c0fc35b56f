// What one Optimizer::step() works on, phase by phase (src/engine/optimizer.cc): check
// fills `resolved` and `updates`, make-state gives new state its home, plan turns every
// update into work items on their route, reduce takes the whole-tensor sums some
// updates need first, run runs the routes.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "octopage/optimizer.h"
#include "src/engine/checks.h"
#include "src/engine/cuda_step.h"
#include "src/engine/paged_hints.h"
#include "src/engine/param_state.h"
#include "src/engine/work_item.h"
#include "src/rules/rule.h"

namespace octopage::engine {

// A parameter that steps: where it is, the options it steps with (its group's, or its
// group's under its overrides) and their resolved values, and its state (`fresh` when
// made by this step, which hands it to the group once its update is done).
struct StepUpdate {
  ParamGroup* group;
  std::size_t group_index;
  std::size_t index;
  const GroupOptions* options;
  const Resolved* resolved;
  std::unique_ptr<ParamState> fresh;
  ParamState* state = nullptr;
};

struct Step {
  explicit Step(std::uint64_t window_bytes) : hints(window_bytes) {}
  std::vector<Resolved> resolved;  // per param group
  // Parameters with overrides of their group's options: theirs (a deque: updates point in).
  std::deque<GroupOptions> overridden_options;
  std::deque<Resolved> overridden_resolved;
  std::vector<StepUpdate> updates;
  std::vector<rules::RuleScalars> scalars;  // per update
  std::vector<std::vector<float>> gnorm;     // per update: its new clipping history, or none
  std::vector<std::vector<float>> unorm;     // per update: its ||u||^2 under max_unorm, or none
  // The routes: `offload` records on the CPU, state in memory on the CPU (in chunks the
  // threads share), and every CUDA parameter.
  std::vector<WorkItem> records;
  std::vector<WorkItem> tasks;
  CudaStep cuda;
  PagedHints hints;  // for the `paged` tasks
};

}  // namespace octopage::engine
