// One parameter's optimizer state: its format, step count and buffers. Created when the
// parameter first has a gradient; zero-filled by the first step's workers, chunk by
// chunk, so the pages are first touched by the thread that updates them.
#pragma once

#include <cstdint>
#include <memory>

#include "octopage/allocator.h"
#include "octopage/optimizer.h"
#include "src/kernels/chunk.h"
#include "src/memory/buffer.h"

namespace octopage::engine {

struct ParamState {
  std::int64_t step = 0;
  StateFormat format = StateFormat::kFp32;
  DType dtype = DType::kFloat32;
  std::int64_t numel = 0;
  bool amsgrad = false;
  int num_states = 0;
  memory::Buffer values[3];  // fp32 values, or 8-bit codes
  memory::Buffer absmax[2];  // 8-bit state only

  // Allocates (does not fill) the state; throws Error(kRuntime) when memory is short.
  static std::unique_ptr<ParamState> create(StateFormat format, DType dtype, std::int64_t numel,
                                            bool amsgrad, Allocator& allocator);

  std::uint64_t bytes() const;
  // Writes the zero state of elements [begin, begin + n); begin is a block boundary.
  void zero_fill(std::int64_t begin, std::int64_t n);
  // A kernel's view of elements [begin, begin + n) of `param` and this state.
  kernels::Chunk chunk(const Parameter& param, std::int64_t begin, std::int64_t n) const;
  StateSnapshot snapshot() const;
};

}  // namespace octopage::engine
