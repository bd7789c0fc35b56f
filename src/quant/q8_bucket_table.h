// The lookup table behind the fast 8-bit encoders (CPU SIMD, CUDA): it reproduces
// encode_reference exactly with one table load and one integer compare per value, and
// is derived from encode_reference itself, so the two cannot drift apart.
//
// Note [Q8 bucket encoder]
// Split the magnitudes |x| into buckets by their fp32 bits: the exponent and the top
// `mantissa_bits` mantissa bits; everything below 2^min_exponent shares bucket 0, and
// everything at or above the last bucket (1.0 and up) shares the last one. The codes
// are sparse enough that each bucket holds at most one place where encode_reference
// changes (checked when the table is built). A bucket's entry packs the code of its
// first value (bits 24..31) and the low bits of x at which the code moves one step
// away from zero (bits 0..23; 1 << low_bits means "never in this bucket"). The signed
// table has a half for each sign of x; the unsigned code's input (a second moment) is
// never negative, so its table has only the positive half.
#pragma once

#include <cstdint>
#include <vector>

#include "src/quant/dynamic_code.h"

namespace octopage::quant {

struct Q8BucketTable {
  int mantissa_bits = 0;
  int low_bits = 0;               // 23 - mantissa_bits
  std::uint32_t first_key = 0;    // bits >> low_bits of 2^min_exponent: bucket 1's key
  std::int32_t num_buckets = 0;   // per sign, bucket 0 included
  std::vector<std::uint32_t> entries;  // [sign half][bucket]

  // The bucket index of x within its sign half.
  std::int32_t bucket(std::uint32_t abs_bits) const;
  // The code for x, computed as the fast encoders do (for tests and the CUDA port).
  std::uint8_t encode(float x) const;
};

Q8BucketTable make_q8_bucket_table(const DynamicCode& code, int mantissa_bits);

// Bucket sizes: the smallest mantissa_bits that separate every pair of thresholds.
inline constexpr int kSignedBucketBits = 6;
inline constexpr int kUnsignedBucketBits = 7;

const Q8BucketTable& signed_bucket_table();
const Q8BucketTable& unsigned_bucket_table();

}  // namespace octopage::quant
