// Whole-tensor reductions that a step takes before a tensor's update (the gradient norm
// of percentile_clipping; later the parameter and update norms of LAMB, LARS and
// max_unorm), with one contract for every backend.
//
// Note [Deterministic sums]
// A sum of squares has the same bits on every backend, SIMD target, thread count and
// placement: elements go in blocks of kReduceBlock (256) from the tensor's start; a
// block is summed in fp64 by 16 lanes (element j of the block into lane j % 16, in
// order) and its lanes folded in order 0..15; blocks are folded in order into chunks of
// kReduceChunk elements, and the chunks' sums in order into the tensor's. fp32 values
// (and bf16/fp16 ones, converted exactly) square exactly in fp64, so only the additions
// round, always in this order.
#pragma once

#include <cstdint>

namespace octopage::kernels {

inline constexpr std::int64_t kReduceBlock = 256;
inline constexpr std::int64_t kReduceLanes = 16;
inline constexpr std::int64_t kReduceChunk = std::int64_t{1} << 16;

// The sum of squares of values[0, n) (n <= kReduceChunk, values at a chunk's start),
// its blocks folded in order: one chunk's sum of Note [Deterministic sums].
using SumSquaresKernel = double (*)(const void* values, std::int64_t n);

}  // namespace octopage::kernels
