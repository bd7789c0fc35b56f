// 8-bit encoding: the reference encoder against a brute-force reading of the midpoint
// rule and against nearest-value search; the bucket table and every SIMD target against
// the reference, code for code; and decode(encode(x)) within the format's budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "src/kernels/cpu/cpu_kernels.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/float_convert.h"
#include "src/quant/formats.h"
#include "src/quant/q8_affine_table.h"
#include "src/quant/q8_bucket_table.h"
#include "src/quant/q8_codec.h"
#include "src/quant/q8_lookup_tables.h"
#include "src/quant/q8_reference.h"

namespace octopage::quant {
namespace {

// The format's error budget for a normalized value: half the widest gap between two
// neighbouring codes, which lies in the top decade, where linspace(0.1, 1, k) steps by
// 0.9/(k-1) with k = 65 (signed) or 129 (unsigned); plus fp32 rounding slack.
constexpr float kSignedBudget = 0.9f / 64 / 2 + 1e-6f;
constexpr float kUnsignedBudget = 0.9f / 128 / 2 + 1e-6f;

const DynamicCode& code_of(bool is_signed) { return is_signed ? signed_code() : unsigned_code(); }

// The midpoint rule read literally: one code up for every midpoint x is above, and on a
// midpoint itself up only if that lands on an even code; then the sign rule.
int brute_force_encode(const DynamicCode& code, float x) {
  int c = 0;
  for (int k = 0; k + 1 < kCodeSize; ++k) {
    if (x > code.midpoints[k] || (x == code.midpoints[k] && (k + 1) % 2 == 0)) ++c;
  }
  if (code.is_signed && std::signbit(code.values[c]) != std::signbit(x)) c += std::signbit(x) ? -1 : 1;
  return c;
}

// Values that matter: every code value and midpoint with their neighbours a few ulps
// away, zeros, the ends of the range and beyond, random values and magnitudes.
std::vector<float> probes(bool is_signed) {
  const DynamicCode& code = code_of(is_signed);
  std::vector<float> out = {0.0f, -0.0f, 1.0f, std::nextafter(1.0f, 2.0f), 1e-30f, 1e-10f};
  for (int i = 0; i < kCodeSize; ++i) {
    for (float center : {code.values[i], i + 1 < kCodeSize ? code.midpoints[i] : 0.0f}) {
      float up = center, down = center;
      out.push_back(center);
      for (int step = 0; step < 3; ++step) {
        up = std::nextafter(up, 2.0f);
        down = std::nextafter(down, -2.0f);
        out.push_back(up);
        out.push_back(down);
      }
    }
  }
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::uniform_real_distribution<float> exponent(-25.0f, 0.0f);
  for (int i = 0; i < 20000; ++i) {
    out.push_back(uniform(rng));
    out.push_back(std::copysign(std::pow(2.0f, exponent(rng)), uniform(rng)));
  }
  if (is_signed) {
    const std::size_t n = out.size();
    for (std::size_t i = 0; i < n; ++i) out.push_back(-out[i]);
  } else {
    std::erase_if(out, [](float x) { return x < 0.0f; });
  }
  std::erase_if(out, [](float x) { return std::fabs(x) > std::nextafter(1.0f, 2.0f); });
  return out;
}

class Q8Encoding : public ::testing::TestWithParam<bool> {};

TEST_P(Q8Encoding, ReferenceIsTheMidpointRule) {
  const DynamicCode& code = code_of(GetParam());
  for (float x : probes(GetParam())) {
    ASSERT_EQ(encode_reference(code, x), brute_force_encode(code, x)) << "x = " << x;
  }
}

TEST_P(Q8Encoding, ReferencePicksANearestCode) {
  const DynamicCode& code = code_of(GetParam());
  for (float x : probes(GetParam())) {
    const int c = encode_reference(code, x);
    const double error = std::fabs(static_cast<double>(x) - code.values[c]);
    const bool sign_rule = code.is_signed && c == code.zero_index - 1 && std::signbit(x) &&
                           x > code.midpoints[code.zero_index - 1];
    for (int other : {c - 1, c + 1}) {
      if (other < 0 || other >= kCodeSize || sign_rule) continue;
      // The fp32 midpoint may sit half an ulp off the exact one: allow that much.
      const double other_error = std::fabs(static_cast<double>(x) - code.values[other]);
      ASSERT_LE(error, other_error + std::ldexp(std::fabs(x), -23)) << "x = " << x << " code " << c;
    }
  }
}

TEST(Q8SignRule, KeepsSmallNegativesNegative) {
  const DynamicCode& code = code_of(true);
  for (float x : {-1e-30f, -1e-9f, -2e-7f, -0.0f}) {
    const int c = encode_reference(code, x);
    EXPECT_EQ(c, code.zero_index - 1) << x;
    EXPECT_LT(code.values[c], 0.0f);
  }
  EXPECT_EQ(encode_reference(code, 0.0f), code.zero_index);
  EXPECT_EQ(encode_reference(code, 1e-30f), code.zero_index);
}

// encode(x) == encode_reference(x) on the probes and on every 61st float of [0, 1] (and
// of [-1, 0] for the signed code).
template <class Encoder>
void expect_matches_reference(bool is_signed, const Encoder& encoder) {
  const DynamicCode& code = code_of(is_signed);
  for (float x : probes(is_signed)) {
    ASSERT_EQ(encoder.encode(x), encode_reference(code, x)) << "x = " << x;
  }
  for (std::uint32_t bits = 0; bits <= 0x3F800000u; bits += 61) {
    for (std::uint32_t sign : {0u, 0x80000000u}) {
      if (sign != 0 && !is_signed) continue;
      const float x = bits_float(sign | bits);
      ASSERT_EQ(encoder.encode(x), encode_reference(code, x)) << "x = " << x;
    }
  }
}

TEST_P(Q8Encoding, BucketTableMatchesReference) {
  const bool is_signed = GetParam();
  expect_matches_reference(is_signed, is_signed ? signed_bucket_table() : unsigned_bucket_table());
}

// The byte-lookup encoder one value at a time (src/quant/q8_codec.h): what the SIMD code
// computes and the CUDA kernels run, here compiled for the host.
struct ByteLookupCodec {
  const Q8DeviceCode& code;
  std::uint8_t encode(float x) const { return q8_encode(code, x); }
};

TEST_P(Q8Encoding, ByteLookupCodecMatchesReference) {
  const bool is_signed = GetParam();
  const Q8LookupTables& tables = is_signed ? signed_lookup_tables() : unsigned_lookup_tables();
  EXPECT_LE(tables.num_buckets, is_signed ? 256 : 512);  // what the SIMD lookups cover
  const Q8DeviceCode device = q8_device_code(tables, code_of(is_signed));
  expect_matches_reference(is_signed, ByteLookupCodec{device});
  const DynamicCode& code = code_of(is_signed);
  for (int c = 0; c < kCodeSize; ++c) {
    EXPECT_EQ(q8_decode(device, static_cast<std::uint8_t>(c), 0.5f),
              decode_reference(code, static_cast<std::uint8_t>(c), 0.5f));
  }
}

TEST_P(Q8Encoding, DecodeOfEncodeWithinBudget) {
  const bool is_signed = GetParam();
  const DynamicCode& code = code_of(is_signed);
  const float budget = is_signed ? kSignedBudget : kUnsignedBudget;
  for (float x : probes(is_signed)) {
    const int c = encode_reference(code, x);
    const float back = decode_reference(code, static_cast<std::uint8_t>(c), 1.0f);
    ASSERT_LE(std::fabs(back - x), budget) << "x = " << x;
    // And no farther than the wider of the two gaps around the chosen code allows.
    const float below = c > 0 ? code.values[c] - code.values[c - 1] : 0.0f;
    const float above = c + 1 < kCodeSize ? code.values[c + 1] - code.values[c] : 0.0f;
    ASSERT_LE(std::fabs(back - x), std::max(below, above) / 2 * 1.0001f + 1e-12f) << "x = " << x;
  }
}

// Note [Q8 affine encoder]: every slot below 2.0 has a fit, and wherever r is not
// flagged floor(r) is the code: on every 7th float of [0, 2), on each threshold and its
// neighbours, and on the probes. Few values of [0, 1] are flagged.
TEST_P(Q8Encoding, AffineEncoderGivesTheCodeWhereverItIsNotFlagged) {
  const bool is_signed = GetParam();
  const Q8AffineTable& table = is_signed ? signed_affine_table() : unsigned_affine_table();
  const Q8LookupTables& lookup = is_signed ? signed_lookup_tables() : unsigned_lookup_tables();
  const DynamicCode& code = code_of(is_signed);
  const Q8DeviceCode exact = q8_device_code(lookup, code);
  EXPECT_LT(table.max_residual, Q8AffineTable::kEpsilon / 2);
  const auto flagged = [&](float r) { return std::fabs(r - std::nearbyint(r)) < Q8AffineTable::kEpsilon; };
  const auto expect_exact_or_flagged = [&](std::uint32_t bits) {
    const float r = q8_affine_r(table, bits);
    if (!flagged(r)) {
      ASSERT_EQ(std::floor(r), q8_encode(exact, bits_float(bits))) << "bits 0x" << std::hex << bits;
    }
  };
  for (std::uint32_t bits = 0; bits < 0x40000000u; bits += 7) expect_exact_or_flagged(bits);
  for (std::uint32_t threshold : lookup.threshold) {
    for (std::uint32_t bits = threshold - 4; threshold < 0x40000000u && bits != threshold + 4; ++bits) {
      expect_exact_or_flagged(bits);
    }
  }
  for (float x : probes(is_signed)) expect_exact_or_flagged(float_bits(std::fabs(x)));
  for (int s = 0; s < Q8AffineTable::kSlots; ++s) {
    if ((table.first_exponent + s) << 23 <= 0x40000000u) {
      EXPECT_GT(table.ceiling[s], 0.0f) << "slot " << s << " unfitted";
    }
  }
  constexpr int kSamples = 1 << 20;
  int flagged_samples = 0;
  for (int i = 0; i < kSamples; ++i) {
    flagged_samples += flagged(q8_affine_r(table, float_bits((i + 0.5f) / kSamples))) ? 1 : 0;
  }
  EXPECT_LT(flagged_samples, kSamples / 1000);  // about 2 * kEpsilon of them
}

// Blocks of [1.0, values...]: the block's absmax is 1, so each value is encoded as is.
std::vector<float> unit_blocks(const std::vector<float>& in) {
  std::vector<float> values;
  for (float x : in) {
    if (values.size() % kQ8BlockSize == 0) values.push_back(1.0f);
    values.push_back(std::clamp(x, -1.0f, 1.0f));
  }
  return values;
}

void expect_simd_equals_reference(bool is_signed, const std::vector<float>& values) {
  const auto n = static_cast<std::int64_t>(values.size());
  std::vector<std::uint8_t> expected_codes(n);
  std::vector<float> expected_absmax(q8_num_blocks(n));
  quantize_reference(code_of(is_signed), values.data(), n, expected_codes.data(), expected_absmax.data());
  std::vector<float> expected_values(n);
  dequantize_reference(code_of(is_signed), expected_codes.data(), expected_absmax.data(), n,
                       expected_values.data());
  for (std::int64_t target : kernels::cpu::cpu_targets()) {
    SCOPED_TRACE("target " + kernels::cpu::cpu_target_name(target));
    kernels::cpu::ScopedCpuTarget force(target);
    const auto& k = kernels::cpu::cpu_kernels();
    std::vector<std::uint8_t> codes(n + 1);  // + 1: an unaligned start
    std::vector<float> absmax(q8_num_blocks(n) + 1);
    k.q8_quantize(is_signed, values.data(), n, codes.data() + 1, absmax.data() + 1);
    for (std::int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(codes[i + 1], expected_codes[i]) << "element " << i << " value " << values[i];
    }
    for (std::size_t b = 0; b < expected_absmax.size(); ++b) ASSERT_EQ(absmax[b + 1], expected_absmax[b]);
    std::vector<float> decoded(n + 1);
    k.q8_dequantize(is_signed, codes.data() + 1, absmax.data() + 1, n, decoded.data() + 1);
    for (std::int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(float_bits(decoded[i + 1]), float_bits(expected_values[i])) << "element " << i;
    }
  }
}

TEST_P(Q8Encoding, EverySimdTargetEncodesLikeReference) {
  expect_simd_equals_reference(GetParam(), unit_blocks(probes(GetParam())));
}

// Every 509th float of [-1, 1] (of [0, 1] unsigned), 64 at a time as the SIMD encoders
// take them: runs of unflagged vectors and, near thresholds, flagged ones.
TEST_P(Q8Encoding, EverySimdTargetEncodesASweepOfFloatsLikeReference) {
  const bool is_signed = GetParam();
  std::vector<float> sweep;
  for (std::uint32_t bits = 0; bits <= 0x3F800000u; bits += 509) {
    sweep.push_back(bits_float(bits));
    if (is_signed) sweep.push_back(-bits_float(bits));
  }
  expect_simd_equals_reference(is_signed, unit_blocks(sweep));
}

TEST_P(Q8Encoding, EverySimdTargetQuantizesLikeReferenceAtOddSizes) {
  const bool is_signed = GetParam();
  for (std::int64_t n : {0, 1, 255, 256, 257, 4099}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::mt19937 rng(static_cast<std::uint32_t>(n));
    std::normal_distribution<float> normal(0.0f, 1e-3f);
    std::vector<float> values(n);
    for (float& v : values) v = is_signed ? normal(rng) : std::fabs(normal(rng));
    // A block of zeros, and for the signed code a block of negative zeros.
    for (std::int64_t i = 256; i < std::min<std::int64_t>(n, 512); ++i) values[i] = 0.0f;
    for (std::int64_t i = 512; is_signed && i < std::min<std::int64_t>(n, 768); ++i) values[i] = -0.0f;
    expect_simd_equals_reference(is_signed, values);
  }
}

INSTANTIATE_TEST_SUITE_P(SignedAndUnsigned, Q8Encoding, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Signed" : "Unsigned"; });

}  // namespace
}  // namespace octopage::quant
