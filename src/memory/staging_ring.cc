#include "src/memory/staging_ring.h"

#include <algorithm>
#include <cstdlib>

#include "octopage/error.h"
#include "src/memory/state_file.h"

namespace octopage::memory {

int StagingRing::slots_for(const TierOptions& o, std::uint64_t offload_bytes) {
  const std::uint64_t needed = (offload_bytes + o.chunk_bytes - 1) / o.chunk_bytes;
  return static_cast<int>(std::clamp<std::uint64_t>(needed, 3, o.ring_bytes / o.chunk_bytes));
}

StagingRing::StagingRing(const TierOptions& o, std::uint64_t offload_bytes)
    : num_slots_(slots_for(o, offload_bytes)), slot_bytes_(o.chunk_bytes) {
  data_ = static_cast<char*>(std::aligned_alloc(kFileAlignment, bytes()));
  OCTOPAGE_CHECK_RUNTIME(data_ != nullptr, "out of memory: could not allocate the ", bytes(),
                         "-byte staging ring for offloaded state");
}

StagingRing::~StagingRing() { std::free(data_); }

}  // namespace octopage::memory
