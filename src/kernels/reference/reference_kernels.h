// The scalar reference kernels: each rule on one float at a time, reference conversions
// and the reference 8-bit quantizer. They define the bits every fast kernel must
// produce; tests compare each SIMD target and CUDA against them. Slow on purpose.
#pragma once

#include "src/kernels/chunk.h"

namespace octopage::kernels {

const KernelTable& reference_kernels();

}  // namespace octopage::kernels
