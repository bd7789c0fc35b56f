// The scalar reference kernels: each rule on one float at a time, reference conversions
// and the reference 8-bit quantizer. They define the bits every fast kernel must
// produce; tests compare each SIMD target and CUDA against them. Slow on purpose.
#pragma once

#include "src/kernels/chunk.h"
#include "src/kernels/reduce.h"

namespace octopage::kernels {

const KernelTable& reference_kernels();
// Note [Deterministic sums], one value at a time, by param dtype.
SumSquaresKernel reference_sum_squares(DType dtype);
const DirectionNormTable& reference_direction_norms();

}  // namespace octopage::kernels
