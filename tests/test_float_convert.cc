// The scalar fp32 <-> bf16/fp16 conversions that define how parameters are rounded,
// against independent references: the compiler's _Float16 and a bf16 rounding written
// from its definition (nearest representable value, ties to an even mantissa).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <cstring>
#include <random>
#include <vector>

#include "src/quant/float_convert.h"

namespace octopage::quant {
namespace {

// bf16 rounding from the definition: the two bf16 neighbours of f, the nearer one, on a
// tie the one whose last mantissa bit is 0.
std::uint16_t bf16_by_definition(float f) {
  const std::uint32_t bits = float_bits(f);
  const auto down = static_cast<std::uint16_t>(bits >> 16);  // toward zero
  const auto up = static_cast<std::uint16_t>(down + 1);       // away from zero
  const double below = std::fabs(static_cast<double>(float_from_bf16(down)));
  const double above = std::fabs(static_cast<double>(float_from_bf16(up)));
  const double value = std::fabs(static_cast<double>(f));
  if (value - below < above - value) return down;
  if (value - below > above - value) return up;
  return (down & 1) == 0 ? down : up;
}

TEST(FloatConvert, Fp16ToFloatMatchesCompilerForEveryHalf) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto half = static_cast<std::uint16_t>(h);
    _Float16 reference;
    std::memcpy(&reference, &half, sizeof half);
    const float expected = static_cast<float>(reference);
    const float actual = float_from_fp16(half);
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(actual)) << std::hex << h;
    } else {
      ASSERT_EQ(float_bits(actual), float_bits(expected)) << std::hex << h;
    }
  }
}

// Every fp32 exponent, at the rounding boundaries of both 16-bit formats and at random
// mantissas: values exactly halfway between two halves/bf16s, just above and below.
std::vector<float> conversion_probes() {
  std::vector<float> probes;
  std::mt19937 rng(7);
  const std::uint32_t tails[] = {0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF,
                                 0x7FFF, 0x8000, 0x8001, 0xFFFF};
  for (std::uint32_t top = 0; top < 0x10000; ++top) {
    for (std::uint32_t tail : tails) probes.push_back(bits_float((top << 16) | tail));
    probes.push_back(bits_float((top << 16) | (rng() & 0xFFFF)));
  }
  return probes;
}

TEST(FloatConvert, FloatToFp16MatchesCompiler) {
  for (float f : conversion_probes()) {
    const _Float16 reference = static_cast<_Float16>(f);
    std::uint16_t expected;
    std::memcpy(&expected, &reference, sizeof expected);
    const std::uint16_t actual = fp16_from_float(f);
    if (std::isnan(f)) {
      ASSERT_EQ(actual & 0x7C00, 0x7C00) << f;
      ASSERT_NE(actual & 0x03FF, 0) << "NaN must stay NaN";
    } else {
      ASSERT_EQ(actual, expected) << "value " << f << " bits 0x" << std::hex << float_bits(f);
    }
  }
}

TEST(FloatConvert, FloatToBf16RoundsToNearestEven) {
  for (float f : conversion_probes()) {
    const std::uint16_t actual = bf16_from_float(f);
    if (std::isnan(f)) {
      ASSERT_EQ(actual, 0x7FC0) << "NaN becomes torch's canonical bf16 NaN";
    } else if (std::isinf(f) || (float_bits(f) & 0x7FFFFFFFu) >= 0x7F7F8000u) {
      // At or past the midpoint between bf16's largest finite value and infinity.
      ASSERT_EQ(actual, (float_bits(f) >> 16 & 0x8000) | 0x7F80) << f;
    } else {
      ASSERT_EQ(actual, bf16_by_definition(f)) << "value " << f << " bits 0x" << std::hex << float_bits(f);
    }
  }
}

TEST(FloatConvert, Bf16ToFloatIsExact) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    ASSERT_EQ(float_bits(float_from_bf16(static_cast<std::uint16_t>(h))), h << 16);
  }
}

}  // namespace
}  // namespace octopage::quant
