// The dynamic codes against bitsandbytes' own values (generated from the real library,
// tests/data/make_bnb_codes.py) and against the published facts about them.
#include <gtest/gtest.h>

#include <cstdint>

#include "src/quant/dynamic_code.h"
#include "src/quant/float_convert.h"

namespace octopage::quant {
namespace {

#include "tests/data/bnb_dynamic_codes.inc"

void expect_equal_to_bnb(const DynamicCode& code, const std::uint32_t (&bnb)[256]) {
  for (int i = 0; i < kCodeSize; ++i) {
    EXPECT_EQ(float_bits(code.values[i]), bnb[i])
        << "index " << i << ": octopage " << code.values[i] << ", bitsandbytes " << bits_float(bnb[i]);
  }
}

TEST(DynamicCode, SignedIsBitsandbytesCodeBitForBit) { expect_equal_to_bnb(signed_code(), kBnbSignedCode); }

TEST(DynamicCode, UnsignedIsBitsandbytesCodeBitForBit) {
  expect_equal_to_bnb(unsigned_code(), kBnbUnsignedCode);
}

TEST(DynamicCode, PublishedLandmarks) {
  const DynamicCode& s = signed_code();
  EXPECT_TRUE(s.is_signed);
  EXPECT_NEAR(s.values[0], -0.99297f, 1e-5f);
  EXPECT_EQ(s.values[127], 0.0f);
  EXPECT_EQ(s.zero_index, 127);
  EXPECT_NEAR(s.values[128], 5.5e-7f, 1e-12f);
  EXPECT_EQ(s.values[255], 1.0f);

  const DynamicCode& u = unsigned_code();
  EXPECT_FALSE(u.is_signed);
  EXPECT_EQ(u.values[0], 0.0f);
  EXPECT_EQ(u.zero_index, 0);
  EXPECT_NEAR(u.values[1], 3.25e-7f, 1e-12f);
  EXPECT_NEAR(u.values[254], 0.99648f, 1e-5f);
  EXPECT_EQ(u.values[255], 1.0f);
}

TEST(DynamicCode, SortedDistinctWithMidpointsBetween) {
  for (const DynamicCode* code : {&signed_code(), &unsigned_code()}) {
    for (int i = 0; i + 1 < kCodeSize; ++i) {
      ASSERT_LT(code->values[i], code->values[i + 1]) << "index " << i;
      EXPECT_EQ(code->midpoints[i], (code->values[i] + code->values[i + 1]) * 0.5f);
      EXPECT_GT(code->midpoints[i], code->values[i]);
      EXPECT_LT(code->midpoints[i], code->values[i + 1]);
    }
  }
}

TEST(DynamicCode, SignedNegativesMirrorPositives) {
  const DynamicCode& s = signed_code();
  for (int k = 1; k <= 127; ++k) EXPECT_EQ(s.values[127 - k], -s.values[127 + k]) << "k " << k;
}

}  // namespace
}  // namespace octopage::quant
