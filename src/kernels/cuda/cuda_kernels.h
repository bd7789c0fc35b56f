// The CUDA kernels of every rule, seen from the host: plain structs and a launcher that enqueues
// many parameters' chunks per launch on the caller's stream and returns a status. No
// CUDA header here, so the engine compiles with any C++ compiler; nothing here
// allocates, throws or synchronizes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "src/kernels/chunk.h"
#include "src/rules/rule.h"

namespace octopage::kernels::cuda {

// One chunk of one parameter (device or managed memory) and its step's scalars. An 8-bit
// chunk starts on a block boundary (Note [Q8 block format]).
struct CudaTask {
  Chunk chunk;
  rules::RuleScalars scalars;
};

// Enqueues the update of every task on `stream` (a cudaStream_t; nullptr is the default
// stream), all with the kernel of (row, format, dtype) (KernelTable's indices), in as few
// launches as their descriptors take. The first call on a device copies the dynamic
// codes to it. Returns 0 or the cudaError_t of the first failure, whose text is
// cuda_error_text(status).
int launch(int row, StateFormat format, DType dtype, const CudaTask* tasks, std::size_t num_tasks,
           void* stream);

// Elements a thread block updates: a launch has one block per tile of every task.
inline constexpr std::int64_t kFp32TileElements = 1024;
inline constexpr std::int64_t kQ8TileElements = 2048;

}  // namespace octopage::kernels::cuda
