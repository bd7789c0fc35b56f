// Optimizer: groups, lazy state, and the step: check everything, allocate what is new,
// then run one flat list of chunks (many small parameters and slices of big ones alike)
// on the thread pool, so per-parameter overhead stays off the critical path.
#include "octopage/optimizer.h"

#include <algorithm>
#include <utility>

#include "octopage/error.h"
#include "src/engine/checks.h"
#include "src/engine/param_state.h"
#include "src/engine/thread_pool.h"
#include "src/kernels/cpu/cpu_kernels.h"
#include "src/quant/formats.h"
#include "src/rules/adam.h"

namespace octopage {
namespace {

// Elements per task: 256 blocks of 8-bit state, 768 KiB of fp32 parameter and state
// traffic; big enough to hide the task hand-out, small enough to balance the threads.
constexpr std::int64_t kChunkElements = std::int64_t{1} << 16;
static_assert(kChunkElements % quant::kQ8BlockSize == 0, "chunks start on block boundaries");

StateFormat format_for(const GroupOptions& options, std::int64_t numel) {
  return options.optim_bits == 8 && numel >= options.min_8bit_size ? StateFormat::kQ8
                                                                   : StateFormat::kFp32;
}

// One task of a step: a chunk and what to run on it.
struct Task {
  kernels::AdamKernel kernel;
  kernels::Chunk chunk;
  std::size_t scalars;                  // index into the step's scalars
  engine::ParamState* fresh = nullptr;  // state to zero-fill first (first step)
  std::int64_t begin = 0;
};

}  // namespace

ParamGroup::ParamGroup(std::vector<Parameter> params, GroupOptions group_options)
    : options(group_options), params_(std::move(params)), states_(params_.size()) {}
ParamGroup::~ParamGroup() = default;
ParamGroup::ParamGroup(ParamGroup&&) noexcept = default;
ParamGroup& ParamGroup::operator=(ParamGroup&&) noexcept = default;

Optimizer::Optimizer(Rule rule, GroupOptions defaults) : rule_(rule), defaults_(defaults) {
  engine::check_group_options(defaults_, engine::kDefaults);
}
Optimizer::~Optimizer() = default;
Optimizer::Optimizer(Optimizer&&) noexcept = default;
Optimizer& Optimizer::operator=(Optimizer&&) noexcept = default;

ParamGroup& Optimizer::add_param_group(std::vector<Parameter> params, GroupOptions options) {
  const std::size_t g = groups_.size();
  engine::check_group_options(options, g);
  std::vector<engine::ParamSpan> spans;
  for (std::size_t i = 0; i < params.size(); ++i) {
    engine::check_parameter(params[i], g, i);
    spans.push_back(engine::span_of(params[i], g, i));
  }
  for (std::size_t h = 0; h < groups_.size(); ++h) {
    for (std::size_t i = 0; i < groups_[h].size(); ++i) {
      spans.push_back(engine::span_of(groups_[h].param(i), h, i));
    }
  }
  engine::check_no_overlap(std::move(spans));
  return groups_.emplace_back(std::move(params), options);
}

void Optimizer::step() {
  const kernels::AdamKernelTable& kernels = kernels::cpu::cpu_kernels().adam;
  const bool decoupled = rule_ == Rule::kAdamW;

  // 1. Check every input; nothing is modified yet.
  struct Update {
    ParamGroup* group;
    std::size_t index;
    StateFormat format;
  };
  std::vector<Update> updates;
  std::vector<engine::ParamSpan> spans;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    engine::check_group_options(group.options, g);
    for (std::size_t i = 0; i < group.size(); ++i) {
      const Parameter& p = group.params_[i];
      engine::check_parameter(p, g, i);
      if (p.grad.data == nullptr || p.value.numel == 0) continue;
      const engine::ParamState* state = group.states_[i].get();
      if (state != nullptr) engine::check_state_fits(*state, p, group.options, g, i);
      updates.push_back({&group, i, state ? state->format : format_for(group.options, p.value.numel)});
      spans.push_back(engine::span_of(p, g, i));
    }
  }
  engine::check_no_overlap(std::move(spans));

  // 2. Allocate state for parameters stepping for the first time. Out of memory throws
  //    here, before any update; the new buffers are then simply released.
  std::vector<std::unique_ptr<engine::ParamState>> fresh(updates.size());
  for (std::size_t u = 0; u < updates.size(); ++u) {
    const Update& up = updates[u];
    if (up.group->states_[up.index] != nullptr) continue;
    const Parameter& p = up.group->params_[up.index];
    fresh[u] = engine::ParamState::create(up.format, p.value.dtype, p.value.numel,
                                          up.group->options.amsgrad, host_allocator());
  }

  // 3. Plan: the step's scalars per parameter, its elements cut into chunks.
  std::vector<rules::AdamScalars> scalars(updates.size());
  std::vector<Task> tasks;
  for (std::size_t u = 0; u < updates.size(); ++u) {
    const Update& up = updates[u];
    engine::ParamState& state = fresh[u] ? *fresh[u] : *up.group->states_[up.index];
    const GroupOptions& o = up.group->options;
    const rules::AdamHyper hyper{o.lr, o.betas[0], o.betas[1], o.eps, o.weight_decay};
    scalars[u] = rules::make_adam_scalars(hyper, decoupled, state.step + 1);
    const kernels::AdamKernel kernel =
        kernels.get(kernels::adam_variant(decoupled, state.amsgrad), state.format, state.dtype);
    const Parameter& p = up.group->params_[up.index];
    const bool first_step = state.step == 0;
    for (std::int64_t begin = 0; begin < state.numel; begin += kChunkElements) {
      const std::int64_t n = std::min(kChunkElements, state.numel - begin);
      tasks.push_back({kernel, state.chunk(p, begin, n), u, first_step ? &state : nullptr, begin});
    }
  }

  // 4. Run. Kernels neither fail nor throw.
  engine::ThreadPool::instance().parallel_for(
      static_cast<std::int64_t>(tasks.size()), [&](std::int64_t t) {
        const Task& task = tasks[static_cast<std::size_t>(t)];
        if (task.fresh != nullptr) task.fresh->zero_fill(task.begin, task.chunk.n);
        task.kernel(task.chunk, scalars[task.scalars]);
      });
  for (std::size_t u = 0; u < updates.size(); ++u) {
    const Update& up = updates[u];
    if (fresh[u] != nullptr) up.group->states_[up.index] = std::move(fresh[u]);
    ++up.group->states_[up.index]->step;
  }
  peak_bytes_ = std::max(peak_bytes_, memory_report().total_state_bytes());
}

StateSnapshot Optimizer::state(std::size_t group, std::size_t index) const {
  const ParamGroup& g = groups_.at(group);
  OCTOPAGE_CHECK(index < g.size(), "expected a parameter index below ", g.size(),
                 " in param group ", group, ", got ", index);
  const engine::ParamState* state = g.states_[index].get();
  return state != nullptr ? state->snapshot() : StateSnapshot{};
}

MemoryReport Optimizer::memory_report() const {
  MemoryReport report;
  for (const ParamGroup& group : groups_) {
    for (const auto& state : group.states_) {
      if (state == nullptr) continue;
      report.state_bytes[static_cast<std::size_t>(Tier::kHost)] += state->bytes();
      const bool q8 = state->format == StateFormat::kQ8;
      (q8 ? report.tensors_8bit : report.tensors_32bit) += 1;
      (q8 ? report.elements_8bit : report.elements_32bit) += state->numel;
    }
  }
  report.peak_bytes = std::max(peak_bytes_, report.total_state_bytes());
  return report;
}

}  // namespace octopage
