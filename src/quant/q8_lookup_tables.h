// The tables behind the byte-lookup 8-bit encoder and decoder (CPU targets with
// AVX-512 VBMI, which look up 64 bytes per instruction), derived from encode_reference
// when first used and checked as they are built.
//
// Note [Q8 byte-lookup encoder]
// Encode the magnitude a = |x| on the positive side of the code, then mirror:
//  1. bucket: the top 16 bits of a are its exponent E and 7 mantissa bits m7. A table by
//     exponent gives an offset and a shift; bucket = offset + (m7 >> shift). Shifts are
//     as coarse as possible while no bucket holds more than one place where the code
//     changes, so the buckets number about 220 (signed) and 440 (unsigned) instead of
//     thousands; exponents below the first threshold share bucket 0.
//  2. base = bucket_base[bucket], the code of the bucket's first value.
//  3. the code is base + 1 when a's bits are >= threshold[base] (where the code moves
//     from base to base + 1, ties of Note [Q8 encoding] folded in), else base. A bucket
//     holds at most that one change, and when it holds none, threshold[base] lies past
//     its end, so the compare says "stay".
//  4. the signed code's negative values mirror its positive ones (values[127 - k] ==
//     -values[127 + k]; ties agree), except that -1 is not a code and -0 is not allowed
//     (the sign rule): for x with the sign bit set the code is clamp(254 - c, 0, 126).
// The unsigned code is only given x >= 0 (second moments).
#pragma once

#include <array>
#include <cstdint>

#include "src/quant/dynamic_code.h"
#include "src/quant/q8_codec.h"

namespace octopage::quant {

struct Q8LookupTables {
  static constexpr int kExponentSlots = 32;
  static constexpr int kMaxBuckets = 512;

  // Exponent slot = max(E - (first_exponent - 1), 0), E the biased exponent of a.
  std::uint16_t first_exponent = 0;
  std::array<std::uint16_t, kExponentSlots> bucket_offset{};
  std::array<std::uint16_t, kExponentSlots> bucket_shift{};
  int num_buckets = 0;
  std::array<std::uint8_t, kMaxBuckets> bucket_base{};
  // threshold[c]: the bits of the smallest magnitude that encodes above c (all ones: none).
  std::array<std::uint32_t, kCodeSize> threshold{};
  // The code values and thresholds split into byte planes: plane[j][c] is byte j
  // (little end first) of values[c] or threshold[c].
  std::array<std::array<std::uint8_t, kCodeSize>, 4> value_planes{};
  std::array<std::array<std::uint8_t, kCodeSize>, 4> threshold_planes{};
  bool is_signed = false;
};

// The tables and the code's values as one plain struct for the encoder of the note, one
// value at a time (src/quant/q8_codec.h: what the SIMD and CUDA code compute).
Q8DeviceCode q8_device_code(const Q8LookupTables& tables, const DynamicCode& code);
// The signed and unsigned codes so, built once.
const Q8DeviceCode& signed_device_code();
const Q8DeviceCode& unsigned_device_code();

Q8LookupTables make_q8_lookup_tables(const DynamicCode& code);

const Q8LookupTables& signed_lookup_tables();
const Q8LookupTables& unsigned_lookup_tables();

}  // namespace octopage::quant
