// The staging ring of `offload` on the CPU: slots of chunk_bytes, aligned for direct I/O,
// that offloaded state is read into, updated in and written back from. Memory only: what
// goes into which slot is the offload pipeline's (src/engine/offload_pipeline.h).
#pragma once

#include <cstdint>

#include "octopage/options.h"

namespace octopage::memory {

class StagingRing {
 public:
  // Throws Error(kRuntime) when there is no memory for it.
  StagingRing(const TierOptions& options, std::uint64_t offload_bytes);
  ~StagingRing();
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;

  // Its slots for `offload_bytes` of offloaded state (TierOptions::ring_bytes): enough to
  // hold it, at least 3, at most ring_bytes / chunk_bytes.
  static int slots_for(const TierOptions& options, std::uint64_t offload_bytes);

  int num_slots() const { return num_slots_; }
  std::uint64_t slot_bytes() const { return slot_bytes_; }
  std::uint64_t bytes() const { return static_cast<std::uint64_t>(num_slots_) * slot_bytes_; }
  char* slot(int i) const { return data_ + static_cast<std::uint64_t>(i) * slot_bytes_; }

 private:
  char* data_ = nullptr;
  int num_slots_ = 0;
  std::uint64_t slot_bytes_ = 0;
};

}  // namespace octopage::memory
