// octopage::torch::Optimizer, the torch::optim::Optimizer that every named class
// (optim.h: AdamW8bit, PagedLion, SGD, ...) is: torch's param groups and archives over
// the core octopage::Optimizer of one registered rule. Rule-neutral: a rule's
// hyperparameters and states come from the registry (octopage/rules.h), not from code here.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "octopage/octopage.h"
#include "octopage/torch/options.h"

namespace octopage::torch {

// What a named class fixes: its rule (a name of the registry), its state bits (0:
// optim_bits decides), whether it is paged, and its typed options (the type its groups'
// options have, made from any Options).
struct ClassInfo {
  const char* name;
  const char* rule;
  int bits;
  bool paged;
  std::unique_ptr<Options> (*make_options)(const Options&);
};

template <class TypedOptions>
std::unique_ptr<Options> make_options_as(const Options& options) {
  return std::make_unique<TypedOptions>(options);
}

// Errors are c10 errors: bad arguments throw c10::ValueError (TORCH_CHECK_VALUE), other
// failures c10::Error, with the core's message where the core found the problem.
//
// Each step() copies every group's options into the core and passes the current
// parameter and gradient buffers (a parameter without a gradient is skipped), so
// options edited through param_groups()[g].options() and schedulers take effect at the
// next step. A step runs on at::get_num_threads() threads unless OCTOPAGE_NUM_THREADS
// is set.
//
// torch::save(optimizer, path) / torch::load(optimizer, path) write and read
// torch::optim's archive layout (Note [Optimizer archive], adapters/torch/src/optimizer.cc):
// each group's options under torch::optim's keys, each parameter's step and states under
// torch's names (exp_avg, momentum_buffer, square_avg, sum, ...) for 32-bit state and
// bitsandbytes' (state1, absmax1, ...) for 8-bit state (Note [Archive state keys],
// adapters/torch/src/state_archive.cc). So a 32-bit checkpoint of Adam, AdamW, SGD,
// RMSprop or Adagrad loads into torch::optim's class of the same name and the reverse.
// Loading takes the checkpoint's state and hyperparameters (those of this rule,
// percentile_clipping and max_unorm too); optim_bits, min_8bit_size and placement stay
// this optimizer's, and the state is converted to them (Note [Loading state] in
// src/engine/optimizer.cc): a checkpoint saved with state in RAM loads into an
// offloading optimizer. Parameters without state in the checkpoint start afresh. A
// checkpoint that does not fit changes nothing.
class Optimizer : public ::torch::optim::Optimizer {
 public:
  ::torch::Tensor step(LossClosure closure = nullptr) override;
  void save(::torch::serialize::OutputArchive& archive) const override;
  void load(::torch::serialize::InputArchive& archive) override;

  // torch's add_param_group (which is not virtual), then the group is checked and
  // registered with the core; nothing is added when a check fails. Options the group
  // does not set come from defaults(). Groups added through a torch::optim::Optimizer&
  // are registered at the next step().
  void add_param_group(const ::torch::optim::OptimizerParamGroup& param_group);

  const char* name() const noexcept { return class_.name; }
  const ClassInfo& class_info() const noexcept { return class_; }
  // The core's rule: its name ("adamw", "sgd", ...), hyperparameters and states.
  const RuleInfo& rule() const noexcept { return core_.rule(); }
  // A group's options (every option set); the named classes return their typed options.
  Options& options(std::size_t group);
  const Options& options(std::size_t group) const;

  // A copy of one parameter's state (step 0: none yet), wherever it lives.
  StateSnapshot core_state(std::size_t group, std::size_t index) const;
  MemoryReport memory_report() const;
  // The files that hold paged and offloaded state.
  std::vector<std::string> state_files() const;
  // Pushes paged state out of the fast tier until the next step (octopage::Optimizer::page_out).
  void page_out();
  const octopage::Optimizer& core() const noexcept { return core_; }

 protected:
  Optimizer(const std::vector<::torch::optim::OptimizerParamGroup>& param_groups, const Options& defaults,
            TierOptions tiers, const ClassInfo& info);

  // options(group) as the class's typed options.
  template <class TypedOptions>
  TypedOptions& options_as(std::size_t group) const {
    auto* typed = dynamic_cast<TypedOptions*>(&const_cast<Optimizer*>(this)->options(group));
    TORCH_CHECK_VALUE(typed != nullptr, name(), ": param group ", group, ": expected its options to be the class's "
                      "typed options, got other options (set_options replaced them)");
    return *typed;
  }

 private:
  // The defaults of a class: the options `given` sets, over the class's (its rule's
  // defaults, its bits and paging).
  static Options class_defaults(const Options& given, const ClassInfo& info);
  void register_new_groups();
  // Copies every group's options and its parameters' buffers (and gradients' when
  // with_grads) into the core.
  void sync_core(bool with_grads);
  // The core's CUDA work goes on PyTorch's current stream when a parameter is on CUDA.
  void follow_torch_stream();

  ClassInfo class_;
  octopage::Optimizer core_;
};

}  // namespace octopage::torch
