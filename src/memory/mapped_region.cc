#include "src/memory/mapped_region.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "octopage/error.h"
#include "src/memory/state_file.h"

#ifndef MADV_COLD
#define MADV_COLD 20  // Linux 5.4; older kernels answer EINVAL, which is fine for advice
#endif

namespace octopage::memory {
namespace {

std::uintptr_t page_size() {
  static const auto size = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

void advise(const void* begin, std::size_t bytes, int advice, bool inward) {
  if (bytes == 0) return;
  const std::uintptr_t page = page_size();
  auto first = reinterpret_cast<std::uintptr_t>(begin);
  auto last = first + bytes;
  // Prefetch rounds outward; release rounds inward, so it never advises a neighbour's page.
  first = inward ? (first + page - 1) / page * page : first / page * page;
  last = inward ? last / page * page : (last + page - 1) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, advice);
}

}  // namespace

MappedRegion::MappedRegion(const StateFile& file, std::uint64_t offset, std::uint64_t bytes)
    : bytes_(bytes) {
  if (bytes == 0) return;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd(), static_cast<off_t>(offset));
  OCTOPAGE_CHECK_RUNTIME(p != MAP_FAILED, "could not map ", bytes, " bytes of '", file.path(),
                         "' for paged optimizer state: ", std::strerror(errno));
  data_ = static_cast<char*>(p);
}

MappedRegion::~MappedRegion() {
  if (data_ != nullptr) ::munmap(data_, bytes_);
}

std::uint64_t MappedRegion::resident_bytes() const {
  if (data_ == nullptr) return 0;
  const std::uintptr_t page = page_size();
  std::vector<unsigned char> in_core((bytes_ + page - 1) / page);
  if (::mincore(data_, bytes_, in_core.data()) != 0) return 0;
  std::uint64_t pages = 0;
  for (unsigned char c : in_core) pages += c & 1;
  return std::min<std::uint64_t>(pages * page, bytes_);
}

std::uint64_t available_ram_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return static_cast<std::uint64_t>(kib) * 1024;
}

void MappedRegion::page_out() const {
  if (bytes_ == 0) return;
  OCTOPAGE_CHECK_RUNTIME(::msync(data_, bytes_, MS_SYNC) == 0, "could not write paged optimizer state back to its file: ",
                         std::strerror(errno));
#ifdef MADV_PAGEOUT
  advise(data_, bytes_, MADV_PAGEOUT, true);
#else
  advise(data_, bytes_, MADV_DONTNEED, true);  // clean shared pages: dropped, the file keeps them
#endif
}

void prefetch(const void* begin, std::size_t bytes) { advise(begin, bytes, MADV_WILLNEED, false); }
void release(const void* begin, std::size_t bytes) { advise(begin, bytes, MADV_COLD, true); }

}  // namespace octopage::memory
