// Scalar conversions between fp32 and the 16-bit parameter formats (bf16, fp16), for
// host and device code. They define the results the SIMD loads and stores must give:
// round to nearest, ties to even; overflow to infinity; NaN stays NaN (bf16 NaN is
// torch's 0x7FC0; fp16 NaN keeps its sign and top payload bits, as F16C does).
#pragma once

#include <cstdint>
#include <cstring>

#include "src/common/macros.h"

namespace octopage::quant {

OCTOPAGE_HOST_DEVICE inline std::uint32_t float_bits(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

OCTOPAGE_HOST_DEVICE inline float bits_float(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

OCTOPAGE_HOST_DEVICE inline float float_from_bf16(std::uint16_t h) {
  return bits_float(static_cast<std::uint32_t>(h) << 16);
}

OCTOPAGE_HOST_DEVICE inline std::uint16_t bf16_from_float(float f) {
  const std::uint32_t bits = float_bits(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;  // NaN
  // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; a carry
  // out of the mantissa correctly bumps the exponent (up to infinity).
  const std::uint32_t rounding_bias = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding_bias) >> 16);
}

OCTOPAGE_HOST_DEVICE inline float float_from_fp16(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return bits_float(sign | 0x7F800000u | (mantissa << 13));
  if (exponent != 0) {
    return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }
  // Zero or subnormal: mantissa * 2^-24 is exact in fp32.
  const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
  return bits_float(sign | float_bits(magnitude));
}

OCTOPAGE_HOST_DEVICE inline std::uint16_t fp16_from_float(float f) {
  const std::uint32_t bits = float_bits(f);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) {  // NaN: quiet it, keep the top payload bits
    return static_cast<std::uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
  }
  if (magnitude >= 0x477FF000u) {  // >= 65520: rounds to infinity
    return static_cast<std::uint16_t>(sign | 0x7C00u);
  }
  if (magnitude < 0x38800000u) {  // below 2^-14: fp16 subnormal or zero
    // Adding 0.5 moves the value's bits to where fp16's subnormal mantissa sits, with
    // fp32's own round-to-nearest-even doing the rounding.
    const float shifted = bits_float(magnitude) + 0.5f;
    return static_cast<std::uint16_t>(sign | (float_bits(shifted) - 0x3F000000u));
  }
  // Normal: rebias the exponent, round the 13 dropped bits to nearest even.
  const std::uint32_t odd = (magnitude >> 13) & 1u;
  const std::uint32_t rounded = magnitude + 0xC8000FFFu + odd;  // -(112 << 23) + 0xFFF
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

}  // namespace octopage::quant
