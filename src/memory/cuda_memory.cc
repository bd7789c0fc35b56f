// The CUDA runtime calls of cuda_memory.h, and octopage/cuda.h's answers. Compiled in
// every build; without OCTOPAGE_HAS_CUDA the answers are "no" and the calls throw.
#include "src/memory/cuda_memory.h"

#include <cstdio>
#include <mutex>
#include <string>

#include "octopage/error.h"

#ifdef OCTOPAGE_HAS_CUDA
#include <cuda_runtime.h>
#endif

namespace octopage {

#ifdef OCTOPAGE_HAS_CUDA

namespace {

struct DeviceCount {
  int count = 0;
  cudaError_t status = cudaSuccess;
};

// Asked once: the answer does not change while the process runs.
const DeviceCount& device_count() {
  static const DeviceCount answer = [] {
    DeviceCount d;
    d.status = cudaGetDeviceCount(&d.count);
    if (d.status != cudaSuccess) d.count = 0;
    return d;
  }();
  return answer;
}

}  // namespace

bool cuda_built() { return true; }
int cuda_device_count() { return device_count().count; }
std::string cuda_unavailable_reason() {
  const DeviceCount& d = device_count();
  if (d.status != cudaSuccess) return std::string("the CUDA runtime found no usable device: ") + cudaGetErrorString(d.status);
  if (d.count == 0) return "the CUDA runtime sees no GPU";
  return "";
}

namespace memory::cuda {
namespace {

cudaStream_t as_stream(CudaStream stream) { return static_cast<cudaStream_t>(stream); }

class PinnedAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    if (cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocPortable) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return p;
  }
  void deallocate(void* p, std::size_t) noexcept override { cudaFreeHost(p); }
  Tier tier() const override { return Tier::kHost; }
};

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(bool managed) : managed_(managed) {}
  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    const cudaError_t status = managed_ ? cudaMallocManaged(&p, bytes == 0 ? 1 : bytes, cudaMemAttachGlobal)
                                        : cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();  // an out-of-memory error is not sticky; clear it
      return nullptr;
    }
    return p;
  }
  void deallocate(void* p, std::size_t) noexcept override { cudaFree(p); }
  Tier tier() const override { return managed_ ? Tier::kHost : Tier::kDevice; }

 private:
  bool managed_;
};

// Note [Paged without prefetch]
// Some systems (Windows, WSL, older GPUs) lack concurrent managed access: managed memory
// works there, but the driver moves all of it at each launch and explicit prefetches are
// refused. `paged` then skips its prefetches and says so once on stderr.
bool concurrent_managed_access(int device) {
  int value = 0;
  if (cudaDeviceGetAttribute(&value, cudaDevAttrConcurrentManagedAccess, device) != cudaSuccess) return false;
  if (value == 0) {
    static std::once_flag warned;
    std::call_once(warned, [] {
      std::fprintf(stderr, "octopage: this GPU has no concurrent managed access: paged optimizer state is "
                           "migrated by the driver at each launch instead of prefetched\n");
    });
  }
  return value != 0;
}

void prefetch(const void* p, std::size_t bytes, bool to_device, CudaStream stream) {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  if (bytes == 0 || !concurrent_managed_access(device)) return;
#if CUDART_VERSION >= 13000
  cudaMemLocation location{};
  location.type = to_device ? cudaMemLocationTypeDevice : cudaMemLocationTypeHost;
  location.id = to_device ? device : 0;
  check(cudaMemPrefetchAsync(p, bytes, location, 0, as_stream(stream)), "cudaMemPrefetchAsync");
#else
  check(cudaMemPrefetchAsync(p, bytes, to_device ? device : cudaCpuDeviceId, as_stream(stream)),
        "cudaMemPrefetchAsync");
#endif
}

}  // namespace

int cuda_memory_device(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  const bool reachable = attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
  return reachable ? attributes.device : -1;
}

int current_device() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

const char* error_text(int status) { return cudaGetErrorString(static_cast<cudaError_t>(status)); }

void check(int status, const char* what) {
  OCTOPAGE_CHECK_RUNTIME(status == cudaSuccess, "CUDA error in ", what, ": ", error_text(status));
}

Allocator& device_allocator() {
  static CudaAllocator allocator(false);
  return allocator;
}

Allocator& managed_allocator() {
  static CudaAllocator allocator(true);
  return allocator;
}

Allocator& pinned_allocator() {
  static PinnedAllocator allocator;
  return allocator;
}

void copy_async(void* dst, const void* src, std::size_t bytes, CudaStream stream) {
  if (bytes > 0) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, as_stream(stream)), "cudaMemcpyAsync");
}

Stream::Stream() {
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  stream_ = stream;
}
Stream::~Stream() { cudaStreamDestroy(as_stream(stream_)); }

Event::Event() {
  cudaEvent_t event = nullptr;
  check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  event_ = event;
}
Event::~Event() { cudaEventDestroy(static_cast<cudaEvent_t>(event_)); }
void Event::record(CudaStream stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(event_), as_stream(stream)), "cudaEventRecord");
}
void Event::wait_on(CudaStream stream) const {
  check(cudaStreamWaitEvent(as_stream(stream), static_cast<cudaEvent_t>(event_), 0), "cudaStreamWaitEvent");
}
void Event::synchronize() const {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)), "cudaEventSynchronize");
}

void fill_async(void* p, int byte, std::size_t bytes, CudaStream stream) {
  if (bytes > 0) check(cudaMemsetAsync(p, byte, bytes, as_stream(stream)), "cudaMemsetAsync");
}

void copy_after(void* dst, const void* src, std::size_t bytes, CudaStream stream) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, as_stream(stream)), "cudaMemcpyAsync");
  synchronize(stream);
}

void prefetch_to_device(const void* p, std::size_t bytes, CudaStream stream) { prefetch(p, bytes, true, stream); }
void prefetch_to_host(const void* p, std::size_t bytes, CudaStream stream) { prefetch(p, bytes, false, stream); }

void synchronize(CudaStream stream) { check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize"); }

}  // namespace memory::cuda

#else  // no CUDA backend in this build

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_unavailable_reason() {
  return "this build of octopage has no CUDA backend (configure with -DOCTOPAGE_CUDA=ON)";
}

namespace memory::cuda {
namespace {
[[noreturn]] void no_cuda() { detail::throw_error(ErrorKind::kRuntime, cuda_unavailable_reason()); }
}  // namespace

int cuda_memory_device(const void*) { return -1; }
int current_device() { no_cuda(); }
const char* error_text(int) { return "no CUDA backend"; }
void check(int status, const char*) {
  if (status != 0) no_cuda();
}
Allocator& device_allocator() { no_cuda(); }
Allocator& managed_allocator() { no_cuda(); }
Allocator& pinned_allocator() { no_cuda(); }
void copy_async(void*, const void*, std::size_t, CudaStream) { no_cuda(); }
Stream::Stream() { no_cuda(); }
Stream::~Stream() = default;
Event::Event() { no_cuda(); }
Event::~Event() = default;
void Event::record(CudaStream) { no_cuda(); }
void Event::wait_on(CudaStream) const { no_cuda(); }
void Event::synchronize() const { no_cuda(); }
void fill_async(void*, int, std::size_t, CudaStream) { no_cuda(); }
void copy_after(void*, const void*, std::size_t, CudaStream) { no_cuda(); }
void prefetch_to_device(const void*, std::size_t, CudaStream) { no_cuda(); }
void prefetch_to_host(const void*, std::size_t, CudaStream) { no_cuda(); }
void synchronize(CudaStream) { no_cuda(); }

}  // namespace memory::cuda
#endif

}  // namespace octopage
