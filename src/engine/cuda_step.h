// The CUDA part of a step: every CUDA parameter's update, routed by its state's
// placement. `device` and `paged` state: whole parameters as tasks, grouped by kernel,
// enqueued on the caller's stream after new state is zeroed and paged state prefetched;
// `offload`: records through the device ring; `cpu_step`: chunks through the host ring
// (src/engine/cuda_pipeline.h).
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "src/engine/cuda_pipeline.h"
#include "src/engine/param_state.h"
#include "src/engine/tiers.h"
#include "src/kernels/cuda/cuda_kernels.h"

namespace octopage::engine {

class CudaStep {
 public:
  // cpu_kernel: the CPU kernel of the state's row, format and dtype (for cpu_step).
  // `scalars` must outlive run().
  void add(const ParamState& state, const Parameter& param,
           kernels::Kernel cpu_kernel, const rules::RuleScalars* scalars, bool first_step);
  bool empty() const { return fresh_.empty() && tasks_.empty() && records_.empty() && chunks_.empty(); }
  // Makes the rings this step needs (throws Error(kRuntime) when there is no memory for
  // them), before anything is modified.
  void prepare(Tiers& tiers);
  // Enqueues every update on `stream`; throws Error(kRuntime) when the runtime refuses a call.
  void run(CudaStream stream) const;

 private:
  std::vector<const ParamState*> fresh_, paged_;
  std::map<std::tuple<int, StateFormat, DType>, std::vector<kernels::cuda::CudaTask>> tasks_;
  std::vector<WorkItem> records_;  // `offload`: one per record
  std::vector<WorkItem> chunks_;   // `cpu_step`: whole parameters, cut by prepare()
  std::uint64_t offload_bytes_ = 0, cpu_step_bytes_ = 0;
  std::int64_t cpu_step_chunk_ = 0;  // elements per cpu_step chunk, from the tiers' chunk_bytes
  CudaOffloadRing* offload_ring_ = nullptr;
  CpuStepRing* cpu_step_ring_ = nullptr;
};

}  // namespace octopage::engine
