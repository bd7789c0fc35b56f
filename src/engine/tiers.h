// An optimizer's memory tiers: gives new state its home (RAM, a mapped file region, or
// records in the offload file) and owns what the lower tier needs: the state directory
// and files, the staging ring and the I/O queue, each made on first use. The policy
// (which ParamState goes where, laid out how) is here in the engine, which knows the
// state's layout; the mechanisms it uses (buffers, files, mappings, the ring, the I/O
// queue, CUDA memory) are src/memory's.
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
#include "src/memory/staging_ring.h"
#include "src/memory/state_file.h"

namespace octopage::engine {

// Throws Error(kInvalidArgument) when the options cannot work (see TierOptions).
void check_tier_options(const TierOptions& options);

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
  memory::StagingRing& ring();
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
  std::unique_ptr<memory::StagingRing> ring_;
  std::unique_ptr<memory::IoQueue> io_queue_;
  std::unique_ptr<CudaOffloadRing> cuda_ring_;
  std::unique_ptr<CpuStepRing> cpu_step_ring_;
  std::vector<std::weak_ptr<memory::MappedRegion>> mappings_;
};

}  // namespace octopage::engine
