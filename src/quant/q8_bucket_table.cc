#include "src/quant/q8_bucket_table.h"

#include <algorithm>
#include <cmath>

#include "octopage/error.h"
#include "src/quant/float_convert.h"
#include "src/quant/q8_reference.h"

namespace octopage::quant {
namespace {

constexpr std::uint32_t kSignBit = 0x80000000u;
constexpr std::uint32_t kAbsMask = 0x7FFFFFFFu;
constexpr std::uint32_t kOneBits = 0x3F800000u;  // 1.0f

// The entry of the bucket covering the magnitudes [first, first + width) of one sign.
std::uint32_t bucket_entry(const DynamicCode& code, std::uint32_t sign, std::uint32_t first,
                           std::uint32_t width, int low_bits) {
  const auto encode_bits = [&](std::uint32_t abs_bits) {
    return static_cast<int>(encode_reference(code, bits_float(sign | abs_bits)));
  };
  const int base = encode_bits(first);
  const int last = encode_bits(first + width - 1);
  std::uint32_t threshold = 1u << low_bits;  // never
  if (last != base) {
    // encode_reference is monotonic in x: find its one change by bisection.
    std::uint32_t lo = 0, hi = width - 1;  // code(lo) == base, code(hi) != base
    while (hi - lo > 1) {
      const std::uint32_t mid = lo + (hi - lo) / 2;
      (encode_bits(first + mid) == base ? lo : hi) = mid;
    }
    const int away_from_zero = sign ? -1 : 1;
    OCTOPAGE_CHECK_RUNTIME(encode_bits(first + hi) == base + away_from_zero && last == base + away_from_zero,
                           "8-bit bucket table: more than one code change in the bucket at 0x",
                           std::hex, sign | first, "; use more mantissa bits");
    threshold = hi;
  }
  return (static_cast<std::uint32_t>(base) << 24) | threshold;
}

}  // namespace

std::int32_t Q8BucketTable::bucket(std::uint32_t abs_bits) const {
  const std::int64_t key = static_cast<std::int64_t>(abs_bits >> low_bits);
  const std::int64_t index = key - static_cast<std::int64_t>(first_key) + 1;
  return static_cast<std::int32_t>(std::clamp<std::int64_t>(index, 0, num_buckets - 1));
}

std::uint8_t Q8BucketTable::encode(float x) const {
  const std::uint32_t bits = float_bits(x);
  const std::uint32_t abs_bits = bits & kAbsMask;
  const bool negative = (bits & kSignBit) != 0 && entries.size() > static_cast<std::size_t>(num_buckets);
  const std::uint32_t entry = entries[bucket(abs_bits) + (negative ? num_buckets : 0)];
  const std::uint32_t low = abs_bits & ((1u << low_bits) - 1);
  const int step = low >= (entry & 0xFFFFFFu) ? (negative ? -1 : 1) : 0;
  return static_cast<std::uint8_t>(static_cast<int>(entry >> 24) + step);
}

Q8BucketTable make_q8_bucket_table(const DynamicCode& code, int mantissa_bits) {
  Q8BucketTable table;
  table.mantissa_bits = mantissa_bits;
  table.low_bits = 23 - mantissa_bits;
  // Bucket 0 holds every magnitude below the power of two at or below the smallest
  // positive threshold, so no code changes inside it.
  const float smallest_threshold = code.midpoints[code.zero_index];
  const std::uint32_t floor_pow2 = float_bits(smallest_threshold) & 0x7F800000u;
  table.first_key = floor_pow2 >> table.low_bits;
  table.num_buckets = static_cast<std::int32_t>((kOneBits >> table.low_bits) - table.first_key + 2);

  const int halves = code.is_signed ? 2 : 1;
  const std::uint32_t width = 1u << table.low_bits;
  table.entries.reserve(static_cast<std::size_t>(halves * table.num_buckets));
  for (int half = 0; half < halves; ++half) {
    const std::uint32_t sign = half == 0 ? 0u : kSignBit;
    const int below = encode_reference(code, bits_float(sign));
    OCTOPAGE_CHECK_RUNTIME(encode_reference(code, bits_float(sign | (floor_pow2 - 1))) == below,
                           "8-bit bucket table: a code changes below the first bucket");
    table.entries.push_back((static_cast<std::uint32_t>(below) << 24) | (1u << table.low_bits));
    for (std::int32_t b = 1; b < table.num_buckets; ++b) {
      const std::uint32_t first = (table.first_key + static_cast<std::uint32_t>(b - 1)) << table.low_bits;
      table.entries.push_back(bucket_entry(code, sign, first, width, table.low_bits));
    }
  }
  return table;
}

const Q8BucketTable& signed_bucket_table() {
  static const Q8BucketTable table = make_q8_bucket_table(signed_code(), kSignedBucketBits);
  return table;
}

const Q8BucketTable& unsigned_bucket_table() {
  static const Q8BucketTable table = make_q8_bucket_table(unsigned_code(), kUnsignedBucketBits);
  return table;
}

}  // namespace octopage::quant
