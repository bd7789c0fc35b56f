// The CPU SIMD kernels, compiled for every Highway target (SSE4, AVX2, AVX-512 and a
// portable fallback) and chosen at run time for the CPU at hand: once per call of
// cpu_kernels(), which a step makes once, never per element.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/kernels/chunk.h"
#include "src/kernels/reduce.h"

namespace octopage::kernels::cpu {

struct CpuKernels {
  const char* target_name = "";
  KernelTable kernels;  // every rule, [row][state format][param dtype]
  SumSquaresKernel sum_squares[kNumDTypes] = {};  // by param dtype: Note [Deterministic sums]
  DirectionNormTable direction_norms;
  // Block-wise 8-bit quantization of n values (codes[n], absmax[q8_num_blocks(n)]) and
  // its inverse, with the signed or unsigned dynamic code.
  void (*q8_quantize)(bool is_signed, const float* values, std::int64_t n, std::uint8_t* codes,
                      float* absmax) = nullptr;
  void (*q8_dequantize)(bool is_signed, const std::uint8_t* codes, const float* absmax,
                        std::int64_t n, float* values) = nullptr;
};

// The kernels of the best target this CPU supports (or of the target a
// ScopedCpuTarget forces).
const CpuKernels& cpu_kernels();

// Targets compiled into octopage that this CPU can run, best first.
std::vector<std::int64_t> cpu_targets();
std::string cpu_target_name(std::int64_t target);

// Forces cpu_kernels() to one target while it lives: for tests and benchmarks.
// Not thread-safe; create it while no step runs.
class ScopedCpuTarget {
 public:
  explicit ScopedCpuTarget(std::int64_t target);
  ~ScopedCpuTarget();
  ScopedCpuTarget(const ScopedCpuTarget&) = delete;
  ScopedCpuTarget& operator=(const ScopedCpuTarget&) = delete;
};

}  // namespace octopage::kernels::cpu
