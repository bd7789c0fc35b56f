// The one unit of work of a step, whatever its route: elements [begin, begin + n) of a
// parameter and of its state, and what updates them. State in memory on the CPU is cut
// into items of a thread task's size; `offload` state into one item per record (Note
// [Offload records]); a CUDA parameter's `device` and `paged` state is one item, its
// `offload` state one per record, its `cpu_step` state one per ring slot.
#pragma once

#include <cstddef>
#include <cstdint>

#include "octopage/optimizer.h"
#include "src/kernels/chunk.h"
#include "src/rules/rule.h"

namespace octopage::engine {

struct ParamState;

struct WorkItem {
  const ParamState* state = nullptr;
  const Parameter* param = nullptr;
  kernels::Kernel kernel = nullptr;  // the CPU kernel of the state's row (CUDA launches by row)
  const rules::RuleScalars* scalars = nullptr;
  std::int64_t begin = 0;
  std::int64_t n = 0;
  bool first_step = false;  // no state yet: zero-filled where it is updated, not read
  std::size_t owner = 0;    // the step's index of the parameter
};

}  // namespace octopage::engine
