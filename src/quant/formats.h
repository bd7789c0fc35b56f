// The state formats, each layout written once for CPU and CUDA code alike.
//
// Note [Q8 block format]
// 8-bit block-wise state (bitsandbytes' format): a tensor of n values is stored as n
// one-byte codes plus one fp32 absmax per block of kQ8BlockSize consecutive values
// (the last block may be short). Value i decodes to code.values[codes[i]] *
// absmax[i / kQ8BlockSize], with the signed dynamic code for a first moment and the
// unsigned one for a second moment: 1 + 4/256 bytes per state per parameter (2.03125 for
// a rule with two states).
//
// Note [Block absmax]
// A block's absmax is max |value| over the block's *updated* fp32 values, taken after
// the rule has run, so the largest value of the block is exactly representable
// (code 1.0 for the unsigned code, 1.0 or -0.99297 for the signed one). Each value is
// encoded as x = value * (1 / absmax), the reciprocal and the product each rounded to
// fp32 (a multiply, not a division per value: much cheaper, and |x| exceeds 1 by at
// most an ulp, which still encodes as the extreme code). A block whose values are all
// zero stores absmax 0 and encodes x = value, i.e. the zero code.
#pragma once

#include <cstdint>

#include "octopage/codes.h"

namespace octopage::quant {

inline constexpr std::int64_t kQ8BlockSize = octopage::kQ8BlockSize;

constexpr std::int64_t q8_num_blocks(std::int64_t n) {
  return (n + kQ8BlockSize - 1) / kQ8BlockSize;
}

// State bytes per parameter for `num_states` states of n values.
constexpr std::int64_t q8_state_bytes(std::int64_t n, int num_states) {
  return num_states * (n + q8_num_blocks(n) * static_cast<std::int64_t>(sizeof(float)));
}
constexpr std::int64_t fp32_state_bytes(std::int64_t n, int num_states) {
  return num_states * n * static_cast<std::int64_t>(sizeof(float));
}

static_assert(q8_state_bytes(kQ8BlockSize, 2) == 2 * (kQ8BlockSize + 4),
              "a Q8 block is 256 one-byte codes and one fp32 absmax");

}  // namespace octopage::quant
