// The two 256-value codes of 8-bit state (Note [Q8 block format]): what bitsandbytes
// saves as qmap1 (signed, first moment) and qmap2 (unsigned, second moment). A saved
// 8-bit state is only meaningful with the codes it was written in.
#pragma once

#include <array>
#include <cstdint>

namespace octopage {

// Values per block of 8-bit state; each block has one fp32 absmax (bitsandbytes' 256).
inline constexpr std::int64_t kQ8BlockSize = 256;

// Sorted ascending; the signed code for a first moment, the unsigned for a second.
const std::array<float, 256>& q8_code_values(bool is_signed);

}  // namespace octopage
