// Encode and decode of one 8-bit value from a code's tables wherever they live (a CUDA
// thread block's shared memory, or the host's DynamicCode), for code that cannot call
// the reference encoder: CUDA threads. It gives exactly encode_reference's codes (Note
// [Q8 encoding]); tests/test_q8_encoding.cc checks every interesting value on the host.
#pragma once

#include <cstdint>

#include "src/common/macros.h"
#include "src/quant/float_convert.h"

namespace octopage::quant {

// The code of a normalized value x. values: the code's 256 sorted values; midpoints: its
// 255 midpoints. An 8-step branch-free binary search finds hi, the first value >= x
// (as std::lower_bound would), then the midpoint rule and, for the signed code, the
// sign rule pick the code.
template <bool kSigned>
OCTOPAGE_HOST_DEVICE inline std::uint8_t q8_encode(const float* values, const float* midpoints, float x) {
  int hi = 0;  // values[0, hi) are < x
  for (int step = 128; step > 0; step >>= 1) {
    if (values[hi + step - 1] < x) hi += step;
  }
  // The search never looks at values[255]: for x above it, hi stays 255 and the midpoint
  // rule below picks 255 all the same.
  int c;
  if (hi == 0) {
    c = 0;
  } else {
    const int lo = hi - 1;
    const float midpoint = midpoints[lo];
    c = x > midpoint ? hi : x < midpoint ? lo : (lo % 2 == 0 ? lo : hi);
  }
  if constexpr (kSigned) {
    const std::uint32_t x_negative = float_bits(x) >> 31;
    if ((float_bits(values[c]) >> 31) != x_negative) c += x_negative ? -1 : 1;
  }
  return static_cast<std::uint8_t>(c);
}

OCTOPAGE_HOST_DEVICE inline float q8_decode(const float* values, std::uint8_t code, float absmax) {
  return values[code] * absmax;
}

}  // namespace octopage::quant
