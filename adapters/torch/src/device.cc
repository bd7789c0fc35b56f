// LibTorch's tensors, CUDA allocator and stream as the core takes them (device.h).
#include "adapters/torch/src/device.h"

#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <c10/core/Allocator.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace octopage::torch {
namespace {

// PyTorch's CUDA caching allocator as the core's allocator of CUDA state, so that
// torch's CUDA memory statistics count it. It keeps each allocation's DataPtr, which
// owns the memory, until the core gives the address back.
class TorchCudaAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    try {
      c10::DataPtr data = c10::GetAllocator(c10::DeviceType::CUDA)->allocate(bytes);
      void* p = data.get();
      const std::lock_guard<std::mutex> lock(mutex_);
      live_.emplace(p, std::move(data));
      return p;
    } catch (const c10::Error&) {
      return nullptr;  // out of memory: the core says so
    }
  }
  void deallocate(void* p, std::size_t) noexcept override {
    const std::lock_guard<std::mutex> lock(mutex_);
    live_.erase(p);
  }
  Tier tier() const override { return Tier::kDevice; }

 private:
  std::mutex mutex_;
  std::unordered_map<void*, c10::DataPtr> live_;
};

}  // namespace

TensorRef tensor_ref(const ::torch::Tensor& t, const char* what, std::size_t group, std::size_t index) {
  TORCH_CHECK_VALUE(t.defined(), "param group ", group, ", parameter ", index, ": expected a defined ", what,
                    ", got an undefined tensor");
  TORCH_CHECK_VALUE(t.layout() == ::torch::kStrided, "param group ", group, ", parameter ", index,
                    ": expected a dense ", what, ", got a ", t.layout(), " tensor");
  const bool on_cuda = t.device().is_cuda() && cuda_built();
  TORCH_CHECK_VALUE(t.device().is_cpu() || on_cuda, "param group ", group, ", parameter ", index, ": expected the ",
                    what, " on the CPU, got a tensor on ", t.device(),
                    cuda_built() ? "" : ": this build of octopage has no CUDA backend");
  DType dtype = DType::kFloat32;
  switch (t.scalar_type()) {
    case ::torch::kFloat: dtype = DType::kFloat32; break;
    case ::torch::kBFloat16: dtype = DType::kBFloat16; break;
    case ::torch::kHalf: dtype = DType::kFloat16; break;
    default:
      TORCH_CHECK_VALUE(false, "param group ", group, ", parameter ", index, ": expected a ", what,
                        " of dtype float32, bfloat16 or float16, got ", t.scalar_type());
  }
  TORCH_CHECK_VALUE(t.is_contiguous(), "param group ", group, ", parameter ", index, ": expected a contiguous ",
                    what, " (octopage updates memory in place), got a strided view of sizes ", t.sizes(),
                    " and strides ", t.strides(), "; make the parameter itself contiguous, not a view of it");
  return TensorRef{t.numel() == 0 ? empty_tensor_data() : t.data_ptr(), t.numel(), dtype,
                   on_cuda ? Device::kCUDA : Device::kCPU};
}

TierOptions with_torch_allocator(TierOptions tiers) {
  if (cuda_built() && !tiers.device_allocator && cuda_device_count() > 0) {
    tiers.device_allocator = std::make_shared<TorchCudaAllocator>();
  }
  return tiers;
}

CudaStream current_torch_stream() {
  const c10::impl::DeviceGuardImplInterface* cuda = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
  return cuda->getStream(c10::Device(c10::DeviceType::CUDA, cuda->getDevice().index())).native_handle();
}

}  // namespace octopage::torch
