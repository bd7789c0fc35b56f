#include "src/engine/cuda_step.h"

#include <algorithm>

#include "src/memory/cuda_memory.h"

namespace octopage::engine {

void CudaStep::add(const ParamState& state, const Parameter& param,
                   kernels::Kernel cpu_kernel, const rules::RuleScalars* scalars, bool first_step) {
  const WorkItem whole{&state, &param, cpu_kernel, scalars, 0, state.numel, first_step};
  switch (state.placement) {
    case Placement::kOffload:
      for (std::int64_t r = 0; r < state.num_records(); ++r) {
        WorkItem record = whole;
        record.begin = r * state.record_elements;
        record.n = std::min(state.record_elements, state.numel - record.begin);
        records_.push_back(record);
      }
      offload_bytes_ += state.file_bytes();
      return;
    case Placement::kCpuStep:
      // Chunks are cut in prepare(), once the tiers' chunk size is known.
      chunks_.push_back(whole);
      cpu_step_bytes_ += static_cast<std::uint64_t>(state.numel) * dtype_size(state.dtype);
      return;
    case Placement::kDevice:
    case Placement::kPaged:
      if (first_step) fresh_.push_back(&state);
      if (state.placement == Placement::kPaged) paged_.push_back(&state);
      if (state.numel > 0) {
        tasks_[{state.row, state.format, state.dtype}].push_back({state.chunk(buffers_of(param), 0, state.numel), *scalars});
      }
      return;
  }
}

void CudaStep::prepare(Tiers& tiers) {
  if (!records_.empty()) offload_ring_ = &tiers.cuda_ring(offload_bytes_);
  if (chunks_.empty()) return;
  cpu_step_ring_ = &tiers.cpu_step_ring(cpu_step_bytes_);
  const std::int64_t chunk = CpuStepRing::chunk_elements(tiers.options().chunk_bytes);
  std::vector<WorkItem> cut;
  for (const WorkItem& whole : chunks_) {
    for (std::int64_t begin = 0; begin < whole.n; begin += chunk) {
      WorkItem part = whole;
      part.begin = begin;
      part.n = std::min(chunk, whole.n - begin);
      cut.push_back(part);
    }
  }
  chunks_ = std::move(cut);
}

void CudaStep::run(CudaStream stream) const {
  for (const ParamState* state : fresh_) state->zero_fill_cuda(state->chunk({}, 0, state->numel), stream);
  for (const ParamState* state : paged_) {
    for (int k = 0; k < state->num_states; ++k) {
      memory::cuda::prefetch_to_device(state->values[k], state->array_bytes(k, state->numel), stream);
    }
    for (int k = 0; k < state->num_absmax(); ++k) {
      memory::cuda::prefetch_to_device(state->absmax[k], state->absmax_bytes(state->numel), stream);
    }
  }
  for (const auto& [kernel, tasks] : tasks_) {
    const auto& [row, format, dtype] = kernel;
    memory::cuda::check(kernels::cuda::launch(row, format, dtype, tasks.data(), tasks.size(), stream),
                        "the update kernel launch");
  }
  if (offload_ring_ != nullptr) offload_ring_->run(records_, stream);
  if (cpu_step_ring_ != nullptr) cpu_step_ring_->run(chunks_, stream);
}

}  // namespace octopage::engine
