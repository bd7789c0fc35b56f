// The scalar reference encoder and decoder of 8-bit block-wise state. It defines the
// codes: every fast path (SIMD, CUDA) must produce exactly these. Plain and slow on
// purpose; see Note [Q8 encoding].
//
// Note [Q8 encoding]
// A normalized value x (|x| <= 1 up to an ulp, see Note [Block absmax]) encodes to the nearest code
// by the midpoint rule: with values[lo] < x <= values[lo + 1], the code is lo + 1 when
// x > midpoints[lo], lo when x < midpoints[lo], and on a tie the even one of the two
// (what bitsandbytes' 8-step binary search from index 127 does). For the signed code,
// bitsandbytes' sign rule follows: when the chosen value's sign bit differs from x's,
// move one code toward x's sign, so a small negative never becomes +0 (-0.0 encodes
// as the smallest negative code). Decoding is values[code] * absmax in fp32.
#pragma once

#include <cstdint>

#include "src/quant/dynamic_code.h"

namespace octopage::quant {

std::uint8_t encode_reference(const DynamicCode& code, float x);

inline float decode_reference(const DynamicCode& code, std::uint8_t c, float absmax) {
  return code.values[c] * absmax;
}

// Quantizes one block of n <= kQ8BlockSize values: *absmax = max |values|, then codes.
void quantize_block_reference(const DynamicCode& code, const float* values, std::int64_t n,
                              std::uint8_t* codes, float* absmax);

// Block-wise over any n: codes[n], absmax[q8_num_blocks(n)].
void quantize_reference(const DynamicCode& code, const float* values, std::int64_t n,
                        std::uint8_t* codes, float* absmax);
void dequantize_reference(const DynamicCode& code, const std::uint8_t* codes,
                          const float* absmax, std::int64_t n, float* values);

}  // namespace octopage::quant
