// The tables of the arithmetic 8-bit encoder: a multiply-add per value instead of the
// byte-lookup encoder's table search, with that encoder as the fallback for the rare
// value that lies too close to a place where the code changes. Derived from the exact
// thresholds of Q8LookupTables (so from encode_reference) and proved against them as
// they are built.
//
// Note [Q8 affine encoder]
// Within one decade of a dynamic code the values are evenly spaced (the midpoints of a
// linspace), so the places where the code changes are evenly spaced too, and the code
// of a magnitude a there is floor(a * slope + offset). Cut the magnitudes in [0, 2) into
// exponent slots (the byte-lookup encoder's: exponents below the first threshold's share
// slot 0). A decade spans about 3.3 binary octaves, so a slot holds at most one change
// of spacing; it is a threshold of the code, `cross`, and splits the slot into a piece
// below and a piece above, each with its own slope and offset. The piece below ends in
// the decade's last (longer) step, so its r is capped at `ceiling` (that code + 0.5).
// The positive-side code of a is then
//     r = a < cross[s] ? min(fma(a, slope_below[s], offset_below[s]), ceiling[s])
//                      : fma(a, slope_above[s], offset_above[s]),     code = floor(r),
// exact for every a whose r lies at least kEpsilon from an integer. The rest (about
// 2 * kEpsilon of values), and every a >= 2.0 and NaN, are "flagged": a SIMD vector
// with any flagged lane is encoded by the byte-lookup encoder instead.
//
// Why floor(r) is then exact (checked for every slot and piece when the table is built,
// slots that fail flag every value): r is monotonic in a (an FMA with a fixed
// non-negative slope, then a min); at each threshold T of the piece (code c below, c + 1
// from T on), r at T and at the float below T lies within kEpsilon / 2 of c + 1; and at
// the piece's first and last value floor(r) is the code, or r is within kEpsilon / 2 of
// the integer it is about to reach. So r crosses each integer only where it is within
// kEpsilon of it (flagged), and between crossings floor(r) counts the thresholds passed.
// Tests check the codes of every 7th float below 2.0, and a sweep through the SIMD
// encoder; the whole range [0, 2) of both signs was checked once (0 mismatches).
#pragma once

#include <array>
#include <cstdint>

#include "src/quant/dynamic_code.h"
#include "src/quant/q8_lookup_tables.h"

namespace octopage::quant {

struct Q8AffineTable {
  static constexpr int kSlots = Q8LookupTables::kExponentSlots;
  // Values whose r is closer than this to an integer are flagged.
  static constexpr float kEpsilon = 1.0f / 4096.0f;

  std::uint32_t first_exponent = 0;  // as Q8LookupTables::first_exponent
  std::array<float, kSlots> cross{};         // +inf: the slot has one piece
  std::array<float, kSlots> slope_below{};
  std::array<float, kSlots> offset_below{};
  std::array<float, kSlots> ceiling{};
  std::array<float, kSlots> slope_above{};
  std::array<float, kSlots> offset_above{};
  // The largest |r - (c + 1)| at any threshold: how far inside kEpsilon the fit is.
  double max_residual = 0.0;
};

// The slot of magnitude bits a < 2.0, as the SIMD code computes it.
inline int q8_affine_slot(const Q8AffineTable& t, std::uint32_t magnitude_bits) {
  const int slot = static_cast<int>(magnitude_bits >> 23) - static_cast<int>(t.first_exponent) + 1;
  return slot > 0 ? slot : 0;
}

// r of the note for magnitude bits a < 2.0, one value at a time (as the SIMD code).
float q8_affine_r(const Q8AffineTable& t, std::uint32_t magnitude_bits);

Q8AffineTable make_q8_affine_table(const DynamicCode& code, const Q8LookupTables& tables);

const Q8AffineTable& signed_affine_table();
const Q8AffineTable& unsigned_affine_table();

}  // namespace octopage::quant
