// `paged` state on the CPU: a region of a state file mapped into memory (MAP_SHARED), so
// the system pages it in and out. octopage tells the system what the update touches next
// (prefetch) and what it is done with; the mapping is the state's home.
#pragma once

#include <cstddef>
#include <cstdint>

namespace octopage::memory {

class StateFile;

class MappedRegion {
 public:
  // Maps [offset, offset + bytes) of `file`; offset is a multiple of kFileAlignment.
  // Throws Error(kRuntime) when the system refuses.
  MappedRegion(const StateFile& file, std::uint64_t offset, std::uint64_t bytes);
  ~MappedRegion();
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  char* data() const { return data_; }
  std::uint64_t bytes() const { return bytes_; }

  // Bytes of the region that are in RAM now.
  std::uint64_t resident_bytes() const;
  // Writes the region back to its file and asks the system to drop it from RAM
  // (MADV_PAGEOUT). Throws Error(kRuntime) when the write-back fails.
  void page_out() const;

 private:
  char* data_ = nullptr;
  std::uint64_t bytes_ = 0;
};

// Hints for any range of mapped memory (rounded to whole pages). Advice only: errors are
// ignored, the update is correct either way.
void prefetch(const void* begin, std::size_t bytes);   // start reading it in
void release(const void* begin, std::size_t bytes);    // done with it: first to evict

// RAM the system could give without swapping (MemAvailable), or 0 when unknown.
std::uint64_t available_ram_bytes();

}  // namespace octopage::memory
