// What a kernel works on: a contiguous run of one parameter's elements and its state.
// Plain pointers, shared by CPU and CUDA kernels; kernels never allocate or throw.
#pragma once

#include <cstdint>

#include "octopage/options.h"
#include "octopage/tensor.h"
#include "src/rules/adam.h"

namespace octopage::kernels {

// Pointers address the run's first element. An 8-bit run starts on a block boundary
// (Note [Q8 block format]); absmax[k] then points at the absmax of its first block.
struct Chunk {
  void* param = nullptr;
  const void* grad = nullptr;
  std::int64_t n = 0;
  void* state[3] = {nullptr, nullptr, nullptr};  // fp32 values, or 8-bit codes
  float* absmax[2] = {nullptr, nullptr};         // 8-bit state only
};

using AdamKernel = void (*)(const Chunk& chunk, const rules::AdamScalars& scalars);

enum class AdamVariant : int { kAdam, kAdamAmsgrad, kAdamW, kAdamWAmsgrad };
inline constexpr int kNumAdamVariants = 4;
inline constexpr int kNumStateFormats = 2;  // octopage::StateFormat
inline constexpr int kNumDTypes = 3;        // octopage::DType

constexpr AdamVariant adam_variant(bool decoupled, bool amsgrad) {
  return static_cast<AdamVariant>((decoupled ? 2 : 0) + (amsgrad ? 1 : 0));
}

// Every Adam kernel of one backend, indexed [variant][state format][param dtype];
// nullptr where the combination does not exist (amsgrad has no 8-bit state).
struct AdamKernelTable {
  AdamKernel kernels[kNumAdamVariants][kNumStateFormats][kNumDTypes] = {};

  AdamKernel& at(AdamVariant variant, StateFormat format, DType dtype) {
    return kernels[static_cast<int>(variant)][static_cast<int>(format)][static_cast<int>(dtype)];
  }
  AdamKernel get(AdamVariant variant, StateFormat format, DType dtype) const {
    return kernels[static_cast<int>(variant)][static_cast<int>(format)][static_cast<int>(dtype)];
  }
};

}  // namespace octopage::kernels
