// The lane operations a rule needs, for one fp32 value per lane: scalar reference
// kernels on the host and CUDA threads on the device. SIMD kernels bring their own
// (src/kernels/cpu/hwy_ops-inl.h) with the same names and IEEE results.
#pragma once

#include <cmath>

#include "src/common/macros.h"

namespace octopage::rules {

struct ScalarOps {
  OCTOPAGE_HOST_DEVICE float set(float x) const { return x; }
  OCTOPAGE_HOST_DEVICE float sqrt(float x) const { return std::sqrt(x); }
  OCTOPAGE_HOST_DEVICE float max(float a, float b) const { return a < b ? b : a; }
  OCTOPAGE_HOST_DEVICE float sign(float x) const { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); }
  OCTOPAGE_HOST_DEVICE bool is_finite(float x) const { return std::isfinite(x); }
  OCTOPAGE_HOST_DEVICE float select(bool condition, float yes, float no) const {
    return condition ? yes : no;
  }
};

}  // namespace octopage::rules
