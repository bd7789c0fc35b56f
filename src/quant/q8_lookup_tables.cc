#include "src/quant/q8_lookup_tables.h"

#include <algorithm>

#include "octopage/error.h"
#include "src/quant/float_convert.h"
#include "src/quant/q8_reference.h"

namespace octopage::quant {
namespace {

constexpr std::uint32_t kNever = 0xFFFFFFFFu;
constexpr std::uint32_t kAboveOne = 0x3F800001u;  // the ulp past 1 that x may reach
constexpr int kMantissaKeyBits = 7;

// The code of the magnitude with these bits, on the code's positive side.
int positive_code(const DynamicCode& code, std::uint32_t abs_bits) {
  return encode_reference(code, bits_float(abs_bits));
}

// The smallest magnitude bits whose code exceeds c (encode_reference is monotonic).
std::uint32_t first_above(const DynamicCode& code, int c) {
  std::uint32_t lo = 0, hi = kAboveOne;  // code(lo) <= c < code(hi)
  if (positive_code(code, hi) <= c) return kNever;
  while (hi - lo > 1) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    (positive_code(code, mid) <= c ? lo : hi) = mid;
  }
  OCTOPAGE_CHECK_RUNTIME(positive_code(code, hi) == c + 1, "8-bit lookup tables: the code jumps past ",
                         c + 1, " at magnitude bits 0x", std::hex, hi);
  return hi;
}

// Magnitude bits of the first value with exponent e and top mantissa bits `key` (key may
// be 128: the first value of the next exponent).
std::uint32_t key_start(std::uint32_t e, std::uint32_t key) { return (e << 23) + (key << 16); }

}  // namespace

Q8LookupTables make_q8_lookup_tables(const DynamicCode& code) {
  Q8LookupTables t;
  t.is_signed = code.is_signed;
  const int zero = code.zero_index;

  t.threshold.fill(kNever);
  for (int c = zero; c + 1 < kCodeSize; ++c) t.threshold[c] = first_above(code, c);

  // Exponents below the first threshold's share bucket 0 (slot 0).
  t.first_exponent = static_cast<std::uint16_t>(t.threshold[zero] >> 23);
  const std::uint32_t last_exponent = 127;  // 1.0 (and the ulp above it)
  OCTOPAGE_CHECK_RUNTIME(last_exponent - t.first_exponent + 1 < Q8LookupTables::kExponentSlots,
                         "8-bit lookup tables: too many exponents for ", Q8LookupTables::kExponentSlots,
                         " slots");
  t.bucket_offset.fill(0);
  t.bucket_shift.fill(kMantissaKeyBits);
  int buckets = 1;
  t.bucket_base[0] = static_cast<std::uint8_t>(positive_code(code, 0));
  for (std::uint32_t e = t.first_exponent; e <= last_exponent; ++e) {
    const int slot = static_cast<int>(e - t.first_exponent + 1);
    // The coarsest shift under which no bucket holds two code changes.
    int shift = kMantissaKeyBits;
    for (;; --shift) {
      OCTOPAGE_CHECK_RUNTIME(shift >= 0, "8-bit lookup tables: two code changes within 7 mantissa bits");
      bool separated = true;
      for (std::uint32_t key = 0; key < (1u << kMantissaKeyBits) && separated; key += 1u << shift) {
        const std::uint32_t first = key_start(e, key);
        const std::uint32_t last = key_start(e, key + (1u << shift)) - 1;
        separated = positive_code(code, last) - positive_code(code, first) <= 1;
      }
      if (separated) break;
    }
    t.bucket_offset[slot] = static_cast<std::uint16_t>(buckets);
    t.bucket_shift[slot] = static_cast<std::uint16_t>(shift);
    for (std::uint32_t key = 0; key < (1u << kMantissaKeyBits); key += 1u << shift) {
      OCTOPAGE_CHECK_RUNTIME(buckets < Q8LookupTables::kMaxBuckets, "8-bit lookup tables: too many buckets");
      t.bucket_base[buckets++] = static_cast<std::uint8_t>(positive_code(code, key_start(e, key)));
    }
  }
  t.num_buckets = buckets;

  for (int c = 0; c < kCodeSize; ++c) {
    const std::uint32_t value = float_bits(code.values[c]);
    for (int j = 0; j < 4; ++j) {
      t.value_planes[j][c] = static_cast<std::uint8_t>(value >> (8 * j));
      t.threshold_planes[j][c] = static_cast<std::uint8_t>(t.threshold[c] >> (8 * j));
    }
  }
  return t;
}

Q8DeviceCode q8_device_code(const Q8LookupTables& t, const DynamicCode& code) {
  static_assert(Q8DeviceCode::kExponentSlots == Q8LookupTables::kExponentSlots &&
                Q8DeviceCode::kMaxBuckets == Q8LookupTables::kMaxBuckets);
  Q8DeviceCode d{};
  std::copy(code.values.begin(), code.values.end(), d.values);
  std::copy(t.threshold.begin(), t.threshold.end(), d.threshold);
  std::copy(t.bucket_offset.begin(), t.bucket_offset.end(), d.bucket_offset);
  std::copy(t.bucket_shift.begin(), t.bucket_shift.end(), d.bucket_shift);
  std::copy(t.bucket_base.begin(), t.bucket_base.end(), d.bucket_base);
  d.first_exponent = t.first_exponent;
  d.is_signed = t.is_signed ? 1 : 0;
  return d;
}

const Q8DeviceCode& signed_device_code() {
  static const Q8DeviceCode code = q8_device_code(signed_lookup_tables(), signed_code());
  return code;
}

const Q8DeviceCode& unsigned_device_code() {
  static const Q8DeviceCode code = q8_device_code(unsigned_lookup_tables(), unsigned_code());
  return code;
}

const Q8LookupTables& signed_lookup_tables() {
  static const Q8LookupTables tables = make_q8_lookup_tables(signed_code());
  return tables;
}

const Q8LookupTables& unsigned_lookup_tables() {
  static const Q8LookupTables tables = make_q8_lookup_tables(unsigned_code());
  return tables;
}

}  // namespace octopage::quant
