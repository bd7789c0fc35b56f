// Buffer: bytes owned through an Allocator, freed when the Buffer goes away.
#pragma once

#include <cstddef>
#include <utility>

#include "octopage/allocator.h"

namespace octopage::memory {

class Buffer {
 public:
  Buffer() = default;
  // Throws Error(kRuntime) naming `what` when the allocator has no memory.
  Buffer(Allocator& allocator, std::size_t bytes, const char* what);
  ~Buffer() { reset(); }
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      reset();
      std::swap(data_, other.data_);
      std::swap(bytes_, other.bytes_);
      std::swap(allocator_, other.allocator_);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  std::size_t bytes() const { return bytes_; }
  Tier tier() const { return allocator_ ? allocator_->tier() : Tier::kHost; }

 private:
  void reset() noexcept {
    if (data_ != nullptr) allocator_->deallocate(data_, bytes_);
    data_ = nullptr;
    bytes_ = 0;
  }

  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Allocator* allocator_ = nullptr;
};

}  // namespace octopage::memory
