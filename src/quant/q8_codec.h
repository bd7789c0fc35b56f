// One dynamic code as CUDA threads (and any scalar code) encode and decode it: the
// byte-lookup encoder of Note [Q8 byte-lookup encoder], one value at a time, from a
// plain struct that can be copied to a GPU's shared memory. It gives exactly the codes
// of encode_reference (Note [Q8 encoding]) for every |x| <= 1 (+1 ulp), which is every
// value a kernel encodes, and the same codes as the CPU's SIMD encoders for any x.
#pragma once

#include <cstdint>

#include "src/common/macros.h"
#include "src/quant/float_convert.h"

namespace octopage::quant {

struct Q8DeviceCode {
  static constexpr int kExponentSlots = 32;
  static constexpr int kMaxBuckets = 512;
  float values[256];                         // decode: values[code] * absmax
  std::uint32_t threshold[256];              // Q8LookupTables::threshold
  std::uint16_t bucket_offset[kExponentSlots];
  std::uint16_t bucket_shift[kExponentSlots];
  std::uint8_t bucket_base[kMaxBuckets];
  std::uint32_t first_exponent;
  std::uint32_t is_signed;
};

OCTOPAGE_HOST_DEVICE inline std::uint8_t q8_encode(const Q8DeviceCode& t, float x) {
  const std::uint32_t bits = float_bits(x);
  const std::uint32_t magnitude = bits & 0x7FFFFFFFu;
  const std::uint32_t key = magnitude >> 16;  // exponent and 7 mantissa bits
  const std::uint32_t exponent = key >> 7;
  // Slots wrap at 32 as the SIMD lookup does; only |x| <= 1 (+1 ulp) is encoded.
  const std::uint32_t slot = (exponent >= t.first_exponent ? exponent - t.first_exponent + 1 : 0) & 31u;
  const std::uint32_t bucket = t.bucket_offset[slot] + ((key & 0x7Fu) >> t.bucket_shift[slot]);
  const int base = t.bucket_base[bucket];
  int c = base + (magnitude >= t.threshold[base] ? 1 : 0);
  if (t.is_signed != 0 && (bits >> 31) != 0) {  // mirror onto the negative side (step 4 of the note)
    c = 254 - c;
    c = c < 0 ? 0 : c > 126 ? 126 : c;
  }
  return static_cast<std::uint8_t>(c);
}

OCTOPAGE_HOST_DEVICE inline float q8_decode(const Q8DeviceCode& t, std::uint8_t code, float absmax) {
  return t.values[code] * absmax;
}

}  // namespace octopage::quant
