#include "src/quant/q8_reference.h"

#include <algorithm>
#include <cmath>

#include "src/quant/formats.h"

namespace octopage::quant {

std::uint8_t encode_reference(const DynamicCode& code, float x) {
  // hi: the first value >= x, so values[hi - 1] < x <= values[hi].
  const auto first_not_less = std::lower_bound(code.values.begin(), code.values.end(), x);
  const int hi = static_cast<int>(first_not_less - code.values.begin());
  int c;
  if (hi == 0) {
    c = 0;
  } else if (hi == kCodeSize) {
    c = kCodeSize - 1;
  } else {
    const int lo = hi - 1;
    const float midpoint = code.midpoints[lo];
    if (x > midpoint) {
      c = hi;
    } else if (x < midpoint) {
      c = lo;
    } else {
      c = lo % 2 == 0 ? lo : hi;
    }
  }
  if (code.is_signed && std::signbit(code.values[c]) != std::signbit(x)) {
    c += std::signbit(x) ? -1 : 1;
  }
  return static_cast<std::uint8_t>(c);
}

void quantize_block_reference(const DynamicCode& code, const float* values, std::int64_t n,
                              std::uint8_t* codes, float* absmax) {
  float block_max = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) block_max = std::max(block_max, std::fabs(values[i]));
  const float scale = block_max > 0.0f ? 1.0f / block_max : 1.0f;  // See Note [Block absmax]
  for (std::int64_t i = 0; i < n; ++i) codes[i] = encode_reference(code, values[i] * scale);
  *absmax = block_max;
}

void quantize_reference(const DynamicCode& code, const float* values, std::int64_t n,
                        std::uint8_t* codes, float* absmax) {
  for (std::int64_t begin = 0; begin < n; begin += kQ8BlockSize) {
    quantize_block_reference(code, values + begin, std::min(kQ8BlockSize, n - begin),
                             codes + begin, absmax + begin / kQ8BlockSize);
  }
}

void dequantize_reference(const DynamicCode& code, const std::uint8_t* codes,
                          const float* absmax, std::int64_t n, float* values) {
  for (std::int64_t i = 0; i < n; ++i) {
    values[i] = decode_reference(code, codes[i], absmax[i / kQ8BlockSize]);
  }
}

}  // namespace octopage::quant
