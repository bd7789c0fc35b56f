// The CUDA placements that carry state or work across the host-device link inside a
// step: `offload` (state in host memory, streamed through a ring of device slots) and
// `cpu_step` (state in host memory, the update run by the CPU kernels on parameters and
// gradients streamed down and up through a ring of host slots). Copies run on streams of
// their own, ordered by events, and the caller's stream waits for the last of them, so
// work queued after step() sees every update home. Only cpu_step makes the host wait for
// the device: the CPU cannot update a chunk before it has arrived.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "octopage/options.h"
#include "src/engine/param_state.h"
#include "src/engine/work_item.h"
#include "src/kernels/chunk.h"
#include "src/memory/buffer.h"
#include "src/memory/cuda_memory.h"
#include "src/rules/rule.h"

namespace octopage::engine {

// Event i of each slot of a ring.
class SlotEvents {
 public:
  explicit SlotEvents(int slots);
  memory::cuda::Event& operator[](int slot) { return *events_[static_cast<std::size_t>(slot)]; }

 private:
  std::vector<std::unique_ptr<memory::cuda::Event>> events_;
};

class CudaOffloadRing {
 public:
  // `slots` device slots of chunk_bytes, from `device`.
  CudaOffloadRing(int slots, std::uint64_t slot_bytes, Allocator& device);
  std::uint64_t bytes() const { return slot_bytes_ * static_cast<std::uint64_t>(slots_); }
  // `records`: one work item per record of a CUDA parameter's offloaded state (Note
  // [Offload records]). Record i is copied into slot i % slots on the upload stream (or
  // zeroed there at its first step), updated on `compute`, and copied home on the
  // download stream; a slot is reused only after its copy home. Throws Error(kRuntime)
  // when the CUDA runtime refuses a call.
  void run(const std::vector<WorkItem>& records, CudaStream compute);

 private:
  char* slot(int s) const { return data_.as<char>() + slot_bytes_ * static_cast<std::uint64_t>(s); }
  int slots_;
  std::uint64_t slot_bytes_;
  memory::Buffer data_;
  memory::cuda::Stream upload_, download_;
  SlotEvents loaded_, updated_, home_;
  memory::cuda::Event start_, done_;
};

class CpuStepRing {
 public:
  // `slots` host slots of slot_bytes, each holding a chunk's parameter and gradient
  // elements (so a chunk has at most chunk_elements(slot_bytes) elements); page-locked
  // when `pinned`.
  CpuStepRing(int slots, std::uint64_t slot_bytes, bool pinned);
  static std::int64_t chunk_elements(std::uint64_t slot_bytes);
  std::uint64_t bytes() const { return slot_bytes_ * static_cast<std::uint64_t>(slots_); }
  // `chunks`: work items of CUDA parameters placed `cpu_step`, each at most
  // chunk_elements(slot_bytes) elements, with their CPU kernels. Chunk i: its parameter
  // and gradient come down into slot i % slots on the download
  // stream (up to `slots` chunks ahead), the CPU updates it, its parameter goes up on
  // the upload stream. Throws Error(kRuntime) when the CUDA runtime refuses a call.
  void run(const std::vector<WorkItem>& chunks, CudaStream compute);

 private:
  char* slot(int s) const { return data_.as<char>() + slot_bytes_ * static_cast<std::uint64_t>(s); }
  void download(const WorkItem& chunk, int s);
  int slots_;
  std::uint64_t slot_bytes_;
  memory::Buffer data_;
  memory::cuda::Stream upload_, download_;
  SlotEvents loaded_, uploaded_;
  memory::cuda::Event start_, done_;
};

}  // namespace octopage::engine
