#include "src/engine/cuda_pipeline.h"

#include <algorithm>

#include "octopage/error.h"
#include "src/engine/thread_pool.h"
#include "src/kernels/cuda/cuda_kernels.h"
#include "src/quant/formats.h"

namespace octopage::engine {
namespace {

// Elements a CPU task of cpu_step updates: as a step's tasks on state in RAM.
constexpr std::int64_t kCpuTaskElements = std::int64_t{1} << 16;

}  // namespace

SlotEvents::SlotEvents(int slots) {
  for (int s = 0; s < slots; ++s) events_.push_back(std::make_unique<memory::cuda::Event>());
}

CudaOffloadRing::CudaOffloadRing(int slots, std::uint64_t slot_bytes, Allocator& device)
    : slots_(slots), slot_bytes_(slot_bytes),
      data_(device, slot_bytes * static_cast<std::uint64_t>(slots), "the device staging ring of offloaded state"),
      loaded_(slots), updated_(slots), home_(slots) {}

void CudaOffloadRing::run(const std::vector<WorkItem>& records, CudaStream compute) {
  if (records.empty()) return;
  start_.record(compute);  // slots are free once the caller's earlier work is done
  start_.wait_on(upload_.get());
  for (std::size_t i = 0; i < records.size(); ++i) {
    const WorkItem& r = records[i];
    const ParamState& state = *r.state;
    const int s = static_cast<int>(i % static_cast<std::size_t>(slots_));
    const std::int64_t begin = r.begin;
    const std::int64_t n = r.n;
    const std::int64_t record = begin / state.record_elements;
    const std::uint64_t bytes = state.bytes_of(n);
    if (i >= static_cast<std::size_t>(slots_)) home_[s].wait_on(upload_.get());
    if (r.first_step) {
      state.zero_fill_cuda(state.record_chunk({}, slot(s), begin, n), upload_.get());
    } else {
      memory::cuda::copy_async(slot(s), state.host_record(record), bytes, upload_.get());
    }
    loaded_[s].record(upload_.get());

    loaded_[s].wait_on(compute);
    const kernels::cuda::CudaTask task{state.record_chunk(buffers_of(*r.param), slot(s), begin, n), *r.scalars};
    memory::cuda::check(kernels::cuda::launch(state.row, state.format, state.dtype, &task, 1, compute),
                        "the update kernel launch");
    updated_[s].record(compute);

    updated_[s].wait_on(download_.get());
    memory::cuda::copy_async(state.host_record(record), slot(s), bytes, download_.get());
    home_[s].record(download_.get());
  }
  done_.record(download_.get());
  done_.wait_on(compute);  // the caller's later work sees the state home
}

CpuStepRing::CpuStepRing(int slots, std::uint64_t slot_bytes, bool pinned)
    : slots_(slots), slot_bytes_(slot_bytes),
      data_(pinned ? memory::cuda::pinned_allocator() : host_allocator(), slot_bytes * static_cast<std::uint64_t>(slots),
            "the host staging ring of cpu_step (pin_host_memory=False takes pageable memory)"),
      loaded_(slots), uploaded_(slots) {}

std::int64_t CpuStepRing::chunk_elements(std::uint64_t slot_bytes) {
  // A parameter and its gradient of up to 4 bytes each, in whole 8-bit blocks.
  const auto elements = static_cast<std::int64_t>(slot_bytes / (2 * sizeof(float)));
  return elements / quant::kQ8BlockSize * quant::kQ8BlockSize;
}

void CpuStepRing::download(const WorkItem& c, int s) {
  const kernels::Chunk on_device = c.state->chunk(buffers_of(*c.param), c.begin, c.n);
  const std::uint64_t bytes = static_cast<std::uint64_t>(c.n) * dtype_size(c.state->dtype);
  memory::cuda::copy_async(slot(s), on_device.param, bytes, download_.get());
  memory::cuda::copy_async(slot(s) + slot_bytes_ / 2, on_device.grad, bytes, download_.get());
  loaded_[s].record(download_.get());
}

void CpuStepRing::run(const std::vector<WorkItem>& chunks, CudaStream compute) {
  if (chunks.empty()) return;
  start_.record(compute);  // gradients are ready once the caller's earlier work is done
  start_.wait_on(download_.get());
  const std::size_t ahead = std::min(chunks.size(), static_cast<std::size_t>(slots_));
  for (std::size_t i = 0; i < ahead; ++i) download(chunks[i], static_cast<int>(i));
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const WorkItem& c = chunks[i];
    const int s = static_cast<int>(i % static_cast<std::size_t>(slots_));
    loaded_[s].synchronize();
    const ElementBuffers staged{slot(s), slot(s) + slot_bytes_ / 2, c.begin};  // the chunk's elements, in the slot
    const std::int64_t tasks = (c.n + kCpuTaskElements - 1) / kCpuTaskElements;
    ThreadPool::instance().parallel_for(tasks, [&](std::int64_t t) {
      const std::int64_t offset = t * kCpuTaskElements;
      const kernels::Chunk part = c.state->chunk(staged, c.begin + offset, std::min(kCpuTaskElements, c.n - offset));
      if (c.first_step) c.state->zero_fill(part);
      c.kernel(part, *c.scalars);
    });
    const std::uint64_t bytes = static_cast<std::uint64_t>(c.n) * dtype_size(c.state->dtype);
    memory::cuda::copy_async(c.state->chunk(buffers_of(*c.param), c.begin, c.n).param, staged.param, bytes,
                             upload_.get());
    uploaded_[s].record(upload_.get());
    if (i + ahead < chunks.size()) {
      uploaded_[s].wait_on(download_.get());  // the slot's parameter is up before the next chunk comes down
      download(chunks[i + ahead], s);
    }
  }
  done_.record(upload_.get());
  done_.wait_on(compute);
}

}  // namespace octopage::engine
