// TensorRef: how a framework hands octopage a buffer it owns: pointer, element count,
// dtype, device. Framework-free on purpose; octopage never frees or resizes it. Only
// dense, contiguous buffers: adapters make views contiguous or reject them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace octopage {

enum class DType : std::uint8_t { kFloat32, kBFloat16, kFloat16 };

enum class Device : std::uint8_t { kCPU, kCUDA };

struct TensorRef {
  void* data = nullptr;
  std::int64_t numel = 0;
  DType dtype = DType::kFloat32;
  Device device = Device::kCPU;
};

// An address for a 0-element buffer that its framework gave none (nullptr): any non-null
// address will do, since nothing is read or written there. Adapters pass it for empty
// tensors, because a gradient with data == nullptr means "no gradient" (optimizer.h),
// while an empty gradient is a gradient: its parameter's step count advances.
inline void* empty_tensor_data() {
  static char byte;
  return &byte;
}

constexpr std::size_t dtype_size(DType dtype) {
  return dtype == DType::kFloat32 ? 4 : 2;
}

constexpr const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat16: return "float16";
  }
  return "unknown dtype";
}

constexpr const char* device_name(Device device) {
  return device == Device::kCPU ? "cpu" : "cuda";
}

}  // namespace octopage
