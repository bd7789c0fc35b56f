// The streamed step of `offload` state: records (Note [Offload records]) are read from
// the file into the staging ring, updated there, and written back, with the read of the
// next batches and the write-back of the previous one overlapping the update of the
// current one. Returns only when no I/O is in flight.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/engine/param_state.h"
#include "src/engine/tiers.h"
#include "src/kernels/chunk.h"

namespace octopage::engine {

// One record of one parameter to update in this step.
struct OffloadRecord {
  const ParamState* state = nullptr;
  const Parameter* param = nullptr;
  kernels::Kernel kernel = nullptr;
  const rules::RuleScalars* scalars = nullptr;
  std::int64_t record = 0;
  bool fresh = false;      // no state yet: zero-filled in the ring, not read
  std::size_t owner = 0;   // the caller's index of the parameter
};

struct OffloadOutcome {
  // Per record: its parameter elements were updated, and its state was written home.
  std::vector<char> updated, home;
  // Empty when every record is updated and home; else what went wrong.
  std::string error;
};

// `chunk_elements`: the most elements per kernel call (the unit the threads share).
OffloadOutcome run_offload_step(const std::vector<OffloadRecord>& records, Tiers& tiers,
                                std::int64_t chunk_elements);

}  // namespace octopage::engine
