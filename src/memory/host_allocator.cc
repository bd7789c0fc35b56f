// Host RAM through aligned_alloc. Buffers of 2 MiB and more are aligned to 2 MiB and
// advised to use transparent huge pages, which spares the TLB on 100M-element state.
#include <sys/mman.h>

#include <cstdlib>

#include "octopage/allocator.h"
#include "octopage/error.h"
#include "src/memory/buffer.h"

namespace octopage {
namespace {

constexpr std::size_t kAlignment = 64;
constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_up(std::size_t bytes, std::size_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

class HostAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    const std::size_t alignment = bytes >= kHugePage ? kHugePage : kAlignment;
    void* pointer = std::aligned_alloc(alignment, round_up(bytes == 0 ? 1 : bytes, alignment));
    if (pointer != nullptr && alignment == kHugePage) {
      madvise(pointer, round_up(bytes, kHugePage), MADV_HUGEPAGE);  // advice only
    }
    return pointer;
  }
  void deallocate(void* pointer, std::size_t) noexcept override { std::free(pointer); }
  Tier tier() const override { return Tier::kHost; }
};

}  // namespace

Allocator& host_allocator() {
  static HostAllocator allocator;
  return allocator;
}

namespace memory {

Buffer::Buffer(Allocator& allocator, std::size_t bytes, const char* what)
    : data_(allocator.allocate(bytes)), bytes_(bytes), allocator_(&allocator) {
  OCTOPAGE_CHECK_RUNTIME(data_ != nullptr, "out of memory: could not allocate ", bytes,
                         " bytes of ", tier_name(allocator.tier()), " memory for ", what);
}

}  // namespace memory
}  // namespace octopage
