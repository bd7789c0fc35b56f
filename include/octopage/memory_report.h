// MemoryReport: what an optimizer's state costs, per memory tier, in bytes the library
// asked for (not counting allocator rounding or file alignment), so a user can print the
// table that proves the savings. Parameters and gradients belong to the caller and are
// not counted.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace octopage {

// kHost is RAM, which is also where a CPU optimizer's state lives when placed on the
// "device". kDevice is accelerator memory; kFile is a file on disk (`paged` and
// `offload` state on the CPU; of paged state, the system keeps what it likes in RAM).
enum class Tier : std::uint8_t { kHost, kDevice, kFile };
inline constexpr std::size_t kNumTiers = 3;

constexpr const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::kHost: return "host";
    case Tier::kDevice: return "device";
    case Tier::kFile: return "file";
  }
  return "unknown tier";
}

struct MemoryReport {
  // State bytes now, by tier (index with static_cast<size_t>(Tier)).
  std::array<std::uint64_t, kNumTiers> state_bytes{};
  // Bytes of staging buffers (the offload ring) and the tier they are in.
  std::uint64_t staging_bytes = 0;
  Tier staging_tier = Tier::kHost;
  // The most each tier ever held at once for this optimizer, state plus staging.
  std::array<std::uint64_t, kNumTiers> peak_bytes{};
  // Of the state in kFile placed `paged`: the bytes resident in RAM now (mincore).
  std::uint64_t paged_resident_bytes = 0;
  // Parameters (tensors) and their elements that have state, by state format.
  std::int64_t tensors_8bit = 0;
  std::int64_t tensors_32bit = 0;
  std::int64_t elements_8bit = 0;
  std::int64_t elements_32bit = 0;

  std::uint64_t state_bytes_in(Tier tier) const {
    return state_bytes[static_cast<std::size_t>(tier)];
  }
  std::uint64_t peak_bytes_in(Tier tier) const {
    return peak_bytes[static_cast<std::size_t>(tier)];
  }
  std::uint64_t total_state_bytes() const {
    std::uint64_t total = 0;
    for (std::uint64_t bytes : state_bytes) total += bytes;
    return total;
  }
};

}  // namespace octopage
