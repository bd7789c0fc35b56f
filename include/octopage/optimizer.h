// octopage::Optimizer: one update rule of the registry (octopage/rules.h: Adam, AdamW,
// ...) over parameter groups of caller-owned buffers, with fp32 or 8-bit block-wise
// state, created lazily at a parameter's first step.
// Framework-free: adapters (Python, LibTorch) copy their param_groups into it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "octopage/cuda.h"
#include "octopage/memory_report.h"
#include "octopage/options.h"
#include "octopage/rules.h"
#include "octopage/tensor.h"

namespace octopage {

namespace engine {
struct ParamState;
class Tiers;
struct Step;
struct OffloadOutcome;
}

// Per-parameter overrides of its group's options (like bitsandbytes'
// GlobalOptimManager.override_config): unset fields follow the group. The state options
// (optim_bits, min_8bit_size, placement) apply when the parameter's state is created;
// hyperparameters and max_unorm at every step, shadowing the group's (and so a
// scheduler's), as bitsandbytes' overrides do.
struct ParamOverrides {
  std::optional<int> optim_bits;
  std::optional<std::int64_t> min_8bit_size;
  std::optional<Placement> placement;
  std::optional<double> max_unorm;
  // The rule's hyperparameters, by name ("lr", "betas", ...), checked as a group's are; an
  // override may not select another variant than its group's (amsgrad, momentum=0 ...).
  std::vector<Hyperparameter> hyperparameters;
  // The element count that decides 8-bit or 32-bit state against min_8bit_size, when it
  // is not the buffer's: a shard of a sharded parameter (FSDP, ZeRO) decides on the
  // whole parameter's size, so every rank's shard keeps the same format.
  std::optional<std::int64_t> format_numel;
};

// A parameter and its gradient. The gradient has the parameter's element count, dtype
// and device; grad.data == nullptr means "no gradient this step": step() skips it. A
// 0-element parameter with a gradient (an empty shard of a sharded parameter) steps as
// torch.optim steps it: its step count advances; it has no state values (pass
// empty_tensor_data() as the data of an empty gradient that has no address).
struct Parameter {
  TensorRef value;
  TensorRef grad;
  ParamOverrides overrides{};
};

// One state array of a parameter, by its name in torch's state_dict (the rule's
// StateInfo): fp32 values, or for 8-bit state codes into the state's dynamic code and one
// absmax per block of 256 values (bitsandbytes' state1/absmax1, ...).
struct StateArray {
  std::string name;
  std::vector<float> values;
  std::vector<std::uint8_t> codes;
  std::vector<float> absmax;
};

// A copy of one parameter's state. step == 0 means it has none yet.
struct StateSnapshot {
  std::int64_t step = 0;
  StateFormat format = StateFormat::kFp32;
  Placement placement = Placement::kDevice;
  std::vector<StateArray> arrays;  // in the order of the rule variant's states
  // percentile_clipping's history of squared gradient norms (bitsandbytes' gnorm_vec):
  // 100 values, or none when the parameter has not stepped with clipping.
  std::vector<float> gnorm_vec;
  // max_unorm's squared update norm ||u||^2 of the last step (bitsandbytes' unorm_vec):
  // one value, or none when the parameter has not stepped with max_unorm. It is measured
  // afresh before every update; a loaded one is only kept to be saved again.
  std::vector<float> unorm_vec;

  const StateArray* find(std::string_view name) const;
  StateArray* find(std::string_view name);
  // The array called `name`; throws Error when there is none.
  const StateArray& at(std::string_view name) const;
};

// State to load into one parameter (Optimizer::load_state).
struct StateLoad {
  std::size_t group = 0;
  std::size_t index = 0;
  StateSnapshot state;  // its placement is ignored
};

class ParamGroup {
 public:
  explicit ParamGroup(std::vector<Parameter> params, GroupOptions options);
  ~ParamGroup();
  ParamGroup(ParamGroup&&) noexcept;
  ParamGroup& operator=(ParamGroup&&) noexcept;

  // Editable between steps, like a torch param_groups entry. Checked by step().
  GroupOptions options;

  std::size_t size() const { return params_.size(); }
  // A parameter's buffers may be replaced between steps (a new gradient each step is
  // the usual case); its element count and dtype must stay those of its state.
  Parameter& param(std::size_t i) { return params_.at(i); }
  const Parameter& param(std::size_t i) const { return params_.at(i); }
  void set_grad(std::size_t i, TensorRef grad) { params_.at(i).grad = grad; }

 private:
  friend class Optimizer;
  std::vector<Parameter> params_;
  std::vector<std::unique_ptr<engine::ParamState>> states_;
};

// What memory_report() would say of an optimizer with these options once parameters of
// these element counts have all stepped: state bytes per tier, the staging ring, tensors
// per state format (peaks are the totals). Nothing is allocated and nothing checks the
// offload directory, so a model larger than this machine can be planned.
MemoryReport plan_memory(std::string_view rule, const std::vector<std::int64_t>& numels,
                         const GroupOptions& options, const TierOptions& tiers = {});

class Optimizer {
 public:
  // `rule` names a registered rule ("adam", "adamw", ...: octopage/rules.h). Groups added
  // without options take `defaults`, and a hyperparameter `defaults` leaves unset takes
  // the rule's default. `tiers` says where `paged` and `offload` state goes; an unknown
  // rule or hyperparameter, an offload_dir that is missing or not writable, or a ring
  // that cannot hold three chunks, is an error here, before any state exists.
  explicit Optimizer(std::string_view rule, GroupOptions defaults, TierOptions tiers = {});
  explicit Optimizer(std::string_view rule) : Optimizer(rule, default_options(rule)) {}
  ~Optimizer();
  Optimizer(Optimizer&&) noexcept;
  Optimizer& operator=(Optimizer&&) noexcept;

  const RuleInfo& rule() const { return *rule_; }
  const GroupOptions& defaults() const { return defaults_; }

  // Checks the group (dtypes, devices, sizes, options, no parameter in two groups) and
  // adds it; throws Error and adds nothing when a check fails.
  ParamGroup& add_param_group(std::vector<Parameter> params, GroupOptions options);
  ParamGroup& add_param_group(std::vector<Parameter> params) {
    return add_param_group(std::move(params), defaults_);
  }
  std::size_t num_param_groups() const { return groups_.size(); }
  ParamGroup& param_group(std::size_t i) { return groups_.at(i); }
  const ParamGroup& param_group(std::size_t i) const { return groups_.at(i); }

  // Updates every parameter that has a gradient, on all threads (see threads.h), and
  // returns when every update is complete and its state is home (in RAM, the mapping or
  // the file). Every input is checked and all new state is allocated (file space
  // reserved) before anything is modified: when a check or an allocation fails,
  // parameters and state are as they were. An I/O error of `offload` state during the
  // update is Note [Failed step].
  void step();

  // A copy of a parameter's state, wherever it lives.
  StateSnapshot state(std::size_t group, std::size_t index) const;
  // Its step count alone (0: no state yet), without copying the state.
  std::int64_t state_step(std::size_t group, std::size_t index) const;
  // Replaces the state of the listed parameters (e.g. from a checkpoint); the others keep
  // theirs. Note [Loading state] says how a state of another format, placement or variant
  // is taken. Every entry is checked and all new memory is allocated before any
  // state is replaced: on Error nothing changed, except when writing offloaded state home
  // fails part-way (then this optimizer is failed, as after Note [Failed step]).
  void load_state(std::vector<StateLoad> states);
  MemoryReport memory_report() const;
  // Pushes `paged` state out of the fast tier, e.g. to free GPU memory for evaluation:
  // a CUDA parameter's managed memory is prefetched to the host on the stream; on the
  // CPU the mapping is written back to its file and dropped from RAM. The next step
  // brings it back. Throws Error(kRuntime) when the runtime or the disk refuses.
  void page_out();
  const TierOptions& tier_options() const { return tier_options_; }
  // The files that hold `paged` and `offload` state (created with the first such state).
  std::vector<std::string> state_files() const;
  // The CUDA stream that steps of CUDA parameters, state copies and loads run on (the
  // torch adapters pass PyTorch's current stream before each step); nullptr, the default,
  // is the legacy default stream. Kernels run on the current CUDA device, which must be
  // the parameters'. For CUDA parameters, step() returns once the update is enqueued on
  // the stream, as torch.optim's fused CUDA step does: work later on that stream sees it.
  void set_cuda_stream(CudaStream stream) { cuda_stream_ = stream; }
  CudaStream cuda_stream() const { return cuda_stream_; }
  // Set after a step failed part-way (Note [Failed step]); every later step() throws.
  bool failed() const { return !failure_.empty(); }

 private:
  void check_usable() const;
  // The phases of step() (src/engine/step.h).
  void check_step(engine::Step& step) const;
  void make_state(engine::Step& step);
  void plan_step(engine::Step& step);
  void reduce_step(engine::Step& step) const;
  void run_step(engine::Step& step);
  [[noreturn]] void fail_offload_step(engine::Step& step, const engine::OffloadOutcome& outcome);
  // The state of parameter `index` of param group `group` (nullptr: none yet); throws
  // Error when there is no such parameter.
  const engine::ParamState* find_state(std::size_t group, std::size_t index) const;
  void note_peaks();
  MemoryReport report_bytes() const;  // memory_report() without asking the system

  const RuleInfo* rule_;
  GroupOptions defaults_;
  TierOptions tier_options_;
  std::unique_ptr<engine::Tiers> tiers_;
  std::string failure_;
  CudaStream cuda_stream_ = nullptr;
  std::deque<ParamGroup> groups_;  // a deque: add_param_group's references stay valid
  std::array<std::uint64_t, kNumTiers> peak_bytes_{};
};

}  // namespace octopage
