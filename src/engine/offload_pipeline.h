// The streamed step of `offload` state: records (Note [Offload records]) are read from
// the file into the staging ring, updated there, and written back, with the read of the
// next batches and the write-back of the previous one overlapping the update of the
// current one. Returns only when no I/O is in flight.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/engine/param_state.h"
#include "src/engine/tiers.h"
#include "src/engine/work_item.h"

namespace octopage::engine {

struct OffloadOutcome {
  // Per item (one record each): its parameter elements were updated, and its state was
  // written home.
  std::vector<char> updated, home;
  // Empty when every record is updated and home; else what went wrong.
  std::string error;
};

// `chunk_elements`: the most elements per kernel call (the unit the threads share).
// `records`: one work item per record of `offload` state, each its record's elements.
OffloadOutcome run_offload_step(const std::vector<WorkItem>& records, Tiers& tiers,
                                std::int64_t chunk_elements);

// The read-only pass of a whole-tensor reduction (Note [Percentile clipping]'s sibling,
// max_unorm): the same records through the same ring, each piece (at most
// chunk_elements, on block boundaries) visited in the ring -- zero state where the
// record has none yet -- and nothing written back. Returns the I/O error, or "".
using RecordVisit = std::function<void(const WorkItem& record, const kernels::Chunk& piece, std::int64_t begin)>;
std::string read_offload_state(const std::vector<WorkItem>& records, Tiers& tiers, std::int64_t chunk_elements,
                               const RecordVisit& visit);

}  // namespace octopage::engine
