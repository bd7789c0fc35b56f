// bitsandbytes' 8-bit dynamic codes: 256 sorted fp32 values each, a signed one for
// first moments and an unsigned one for second moments, with the fp32 midpoints the
// encoder compares against. Values only; encoding lives in q8_reference.h.
#pragma once

#include <array>
#include <cstdint>

namespace octopage::quant {

inline constexpr int kCodeSize = 256;

struct DynamicCode {
  bool is_signed = false;
  // Sorted ascending, all distinct. values[zero_index] == 0.0f.
  std::array<float, kCodeSize> values{};
  // midpoints[i] = (values[i] + values[i + 1]) * 0.5f in fp32: the encoder's thresholds.
  std::array<float, kCodeSize - 1> midpoints{};
  std::uint8_t zero_index = 0;
};

// Builds a code the way bitsandbytes' create_dynamic_map(signed, 7, 8) does on a
// current x86 CPU (see dynamic_code.cc); tests compare it with bitsandbytes' values.
DynamicCode make_dynamic_code(bool is_signed);

// The two codes, built once.
const DynamicCode& signed_code();
const DynamicCode& unsigned_code();

}  // namespace octopage::quant
