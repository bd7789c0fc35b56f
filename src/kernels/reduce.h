// Whole-tensor reductions that a step takes before a tensor's update (the gradient norm
// of percentile_clipping, the parameter and update norms of max_unorm; next, LAMB's and
// LARS's), with one contract for every backend.
//
// Note [Deterministic sums]
// A sum of squares has the same bits on every backend, SIMD target, thread count and
// placement: elements go in blocks of kReduceBlock (256) from the tensor's start; a
// block is summed in fp64 by 16 lanes (element j of the block into lane j % 16, in
// order) and its lanes folded in order 0..15; the blocks' sums are folded in order into
// the tensor's (fold_blocks). Kernels write block sums, so a tensor cut into pieces on
// block boundaries anywhere (chunks in RAM, records of offloaded state) sums alike. fp32
// values (and bf16/fp16 ones, converted exactly) square exactly in fp64, so only the
// additions round, always in this order.
#pragma once

#include <cstdint>

#include "src/kernels/chunk.h"
#include "src/rules/rule.h"

namespace octopage::kernels {

inline constexpr std::int64_t kReduceBlock = 256;
inline constexpr std::int64_t kReduceLanes = 16;

inline std::int64_t reduce_blocks(std::int64_t n) { return (n + kReduceBlock - 1) / kReduceBlock; }

// The sums of squares of values[0, n) (values at a block's start), block by block:
// block_sums[reduce_blocks(n)].
using SumSquaresKernel = void (*)(const void* values, std::int64_t n, double* block_sums);

// The sums of a row's direction() squared (max_unorm's update norm) over a chunk, the
// gradient scaled by scalars.grad_scale first, block by block; 8-bit state is decoded
// first (a reduce block is one 8-bit block); the chunk's parameter is not read.
using DirectionNormKernel = void (*)(const Chunk& chunk, const rules::RuleScalars& scalars, double* block_sums);

// [row][state format][param dtype], as KernelTable. (bitsandbytes' 8-bit kernels do not
// clip; octopage's LAMB8bit and LARS8bit do.)
struct DirectionNormTable {
  DirectionNormKernel kernels[rules::kNumRows][kNumStateFormats][kNumDTypes] = {};
  DirectionNormKernel& at(int row, StateFormat format, DType dtype) {
    return kernels[row][static_cast<int>(format)][static_cast<int>(dtype)];
  }
  DirectionNormKernel get(int row, StateFormat format, DType dtype) const {
    return kernels[row][static_cast<int>(format)][static_cast<int>(dtype)];
  }
};

// The tensor's sum from its blocks' sums, in order.
inline double fold_blocks(const double* block_sums, std::int64_t blocks) {
  double total = 0.0;
  for (std::int64_t b = 0; b < blocks; ++b) total += block_sums[b];
  return total;
}

}  // namespace octopage::kernels
