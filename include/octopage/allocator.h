// Allocator: where a tier's bytes come from. octopage brings one for host RAM; a
// framework can bring its own (e.g. PyTorch's caching allocator for device memory), so
// its own memory accounting sees octopage's state.
#pragma once

#include <cstddef>

#include "octopage/memory_report.h"

namespace octopage {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // At least `bytes` bytes aligned to 64, or nullptr when there is no memory.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* pointer, std::size_t bytes) noexcept = 0;
  virtual Tier tier() const = 0;
};

// Host RAM, 64-byte aligned; large buffers are advised to use huge pages.
Allocator& host_allocator();

}  // namespace octopage
