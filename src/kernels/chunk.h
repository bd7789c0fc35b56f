// What a kernel works on: a contiguous run of one parameter's elements and its state,
// and the one kernel type and table that every backend fills. Plain pointers, shared by
// CPU and CUDA kernels; kernels never allocate or throw.
#pragma once

#include <cstdint>

#include "octopage/options.h"
#include "octopage/tensor.h"
#include "src/rules/registry.h"

namespace octopage::kernels {

// Pointers address the run's first element. An 8-bit run starts on a block boundary
// (Note [Q8 block format]); absmax[k] then points at the absmax of its first block.
struct Chunk {
  void* param = nullptr;
  const void* grad = nullptr;
  std::int64_t n = 0;
  void* state[rules::kMaxStates] = {};   // fp32 values, or 8-bit codes
  float* absmax[rules::kMaxStates] = {};  // 8-bit state only
};

using Kernel = void (*)(const Chunk& chunk, const rules::RuleScalars& scalars);

inline constexpr int kNumStateFormats = 2;  // octopage::StateFormat
inline constexpr int kNumDTypes = 3;        // octopage::DType

// Every kernel of one backend, indexed [row][state format][param dtype] (a row is one
// variant of one registered rule: rules::row_spec); nullptr where the combination does
// not exist (a row whose states are never 8-bit).
struct KernelTable {
  Kernel kernels[rules::kNumRows][kNumStateFormats][kNumDTypes] = {};

  Kernel& at(int row, StateFormat format, DType dtype) {
    return kernels[row][static_cast<int>(format)][static_cast<int>(dtype)];
  }
  Kernel get(int row, StateFormat format, DType dtype) const {
    return kernels[row][static_cast<int>(format)][static_cast<int>(dtype)];
  }
};

}  // namespace octopage::kernels
