// The CUDA runtime calls the engine makes: allocators for device and managed memory,
// fills, copies and prefetches on a stream, each checked. In a build without CUDA they
// exist and throw, and the engine never reaches them (CUDA buffers are refused first).
#pragma once

#include <cstddef>

#include "octopage/allocator.h"
#include "octopage/cuda.h"

namespace octopage::memory::cuda {

// Throws Error(kRuntime) "CUDA error in <what>: <the runtime's text>" unless status is 0.
void check(int status, const char* what);
const char* error_text(int status);

// The device whose memory p is (device or managed memory), or -1 when a CUDA kernel
// cannot reach it (host memory).
int cuda_memory_device(const void* p);
// The current CUDA device (kernels run and state is allocated there).
int current_device();

// cudaMalloc on the current device: Tier::kDevice.
Allocator& device_allocator();
// cudaMallocManaged (unified memory, the `paged` placement): the driver migrates it
// between host and device; reported as Tier::kHost, where it lives between steps.
Allocator& managed_allocator();

// Page-locked host memory (cudaHostAlloc), Tier::kHost: what `offload` and `cpu_step`
// copies run from at full speed, asynchronously.
Allocator& pinned_allocator();

// Sets `bytes` bytes at p to `byte`, on the stream.
void fill_async(void* p, int byte, std::size_t bytes, CudaStream stream);
// Copies after the stream's work so far (any direction), then waits for the copy.
void copy_after(void* dst, const void* src, std::size_t bytes, CudaStream stream);
// Moves managed memory to the current device (before an update) or to the host, on the
// stream. Without concurrent managed access (Note [Paged without prefetch]) it does
// nothing: the driver migrates the pages at the next launch.
void prefetch_to_device(const void* p, std::size_t bytes, CudaStream stream);
void prefetch_to_host(const void* p, std::size_t bytes, CudaStream stream);
void synchronize(CudaStream stream);
// Copies (any direction) on the stream, without waiting.
void copy_async(void* dst, const void* src, std::size_t bytes, CudaStream stream);

// A stream of octopage's own (non-blocking), for copies that overlap the update.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  CudaStream get() const { return stream_; }

 private:
  CudaStream stream_ = nullptr;
};

// An event that orders streams: record() marks the work a stream has so far; wait_on()
// makes another stream's later work wait for it; synchronize() makes the host wait.
class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(CudaStream stream);
  void wait_on(CudaStream stream) const;  // `stream` waits for the last record()
  void synchronize() const;

 private:
  void* event_ = nullptr;
};

}  // namespace octopage::memory::cuda
