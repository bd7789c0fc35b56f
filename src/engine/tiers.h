// An optimizer's memory tiers: gives new state its home (RAM, a mapped file region, or
// records in the offload file) and owns what the lower tier needs: the state directory
// and files, the staging ring and the I/O queue, each made on first use.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "octopage/allocator.h"
#include "octopage/options.h"
#include "src/engine/cuda_pipeline.h"
#include "src/engine/param_state.h"
#include "src/memory/io_queue.h"
#include "src/memory/state_file.h"

namespace octopage::engine {

// Throws Error(kInvalidArgument) when the options cannot work (see TierOptions).
void check_tier_options(const TierOptions& options);

// The staging ring of `offload`: slots of chunk_bytes, aligned for direct I/O.
class StagingRing {
 public:
  StagingRing(const TierOptions& options, std::uint64_t offload_bytes);
  ~StagingRing();
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;

  // Its slots for `offload_bytes` of offloaded state (TierOptions::ring_bytes).
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

class Tiers {
 public:
  explicit Tiers(const TierOptions& options);
  ~Tiers();

  // Gives every state its home: buffers in RAM, one mapped region for the paged ones, one
  // reservation for the offloaded ones; for a CUDA parameter, device memory (or managed
  // memory when paged). All or nothing: on Error nothing is kept (files
  // are shrunk back) and the states stay homeless.
  void place(const std::vector<ParamState*>& states);

  const TierOptions& options() const { return options_; }
  memory::StateFile* offload_file() const { return offload_file_.get(); }
  // The ring and the queue, made on first use (throws Error(kRuntime) when it cannot).
  StagingRing& ring();
  memory::IoQueue& io_queue();
  // The rings of CUDA parameters' `offload` (device slots) and `cpu_step` (host slots),
  // made on first use for that much offloaded state or parameter bytes.
  CudaOffloadRing& cuda_ring(std::uint64_t offload_bytes);
  CpuStepRing& cpu_step_ring(std::uint64_t parameter_bytes);
  // Bytes of every staging ring, by the tier it is in.
  std::array<std::uint64_t, kNumTiers> staging_bytes_by_tier() const;
  std::vector<std::string> files() const;
  // Of the paged state: bytes resident in RAM now.
  std::uint64_t paged_resident_bytes() const;
  // Writes the CPU's paged state back to its file and out of RAM.
  void page_out() const;

 private:
  memory::StateFile& file(std::unique_ptr<memory::StateFile>& slot, const char* kind, bool direct);
  void place_in_memory(ParamState& state, Allocator& allocator);
  void place_in_host_records(const std::vector<ParamState*>& states);
  Allocator& device_allocator() const;
  void place_paged(const std::vector<ParamState*>& states);
  void place_offloaded(const std::vector<ParamState*>& states);

  TierOptions options_;
  memory::StateDirectory directory_;
  std::unique_ptr<memory::StateFile> paged_file_;
  std::unique_ptr<memory::StateFile> offload_file_;
  std::unique_ptr<StagingRing> ring_;
  std::unique_ptr<memory::IoQueue> io_queue_;
  std::unique_ptr<CudaOffloadRing> cuda_ring_;
  std::unique_ptr<CpuStepRing> cpu_step_ring_;
  std::vector<std::weak_ptr<memory::MappedRegion>> mappings_;
};

}  // namespace octopage::engine
