// octopage's optimizers for LibTorch training loops: Adam and AdamW with 32-bit or 8-bit
// state, placed on the device, paged or offloaded, as torch::optim::Optimizer subclasses
// with bitsandbytes' class names (AdamW8bit, PagedAdamW, ...) over the core
// octopage::Optimizer. They update dense, contiguous fp32, bf16 and fp16 tensors in place:
// CPU tensors always, CUDA tensors too when octopage is built with -DOCTOPAGE_CUDA=ON
// (README, "The CUDA backend"). The C++ twin of python/octopage/optim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include <torch/optim/optimizer.h>

#include "octopage/octopage.h"

namespace octopage::torch {

// An Adam/AdamW param group's options: torch::optim::AdamOptions' (lr, betas, eps,
// weight_decay, amsgrad) and octopage's (optim_bits, min_8bit_size, placement), with the
// same names. An option is either set (by its setter or the lr constructor) or unset; an
// optimizer fills the unset ones of its defaults from its class (AdamW decays by 1e-2,
// Adam not at all; 8bit classes keep 8-bit state, Paged classes place state `paged`),
// and a group's unset ones from the optimizer's defaults. So
// AdamW8bit(params, AdamOptions().lr(1e-2)) keeps 8-bit state and decays by 1e-2, and a
// group with AdamOptions().weight_decay(0) decays by 0 whatever the defaults say.
class AdamOptions : public ::torch::optim::OptimizerCloneableOptions<AdamOptions> {
 public:
  using betas_t = std::tuple<double, double>;

  AdamOptions() = default;
  AdamOptions(double lr);  // NOLINT(google-explicit-constructor): as torch::optim::AdamOptions

  AdamOptions& lr(double value);
  AdamOptions& betas(const betas_t& value);
  AdamOptions& eps(double value);
  AdamOptions& weight_decay(double value);
  AdamOptions& amsgrad(bool value);
  // 32: fp32 state. 8: 8-bit block-wise state for parameters of at least min_8bit_size
  // elements (fp32 state for smaller ones).
  AdamOptions& optim_bits(int value);
  AdamOptions& min_8bit_size(std::int64_t value);
  AdamOptions& placement(Placement value);

  double lr() const noexcept { return lr_; }
  const betas_t& betas() const noexcept { return betas_; }
  double eps() const noexcept { return eps_; }
  double weight_decay() const noexcept { return weight_decay_; }
  bool amsgrad() const noexcept { return amsgrad_; }
  int optim_bits() const noexcept { return optim_bits_; }
  std::int64_t min_8bit_size() const noexcept { return min_8bit_size_; }
  Placement placement() const noexcept { return placement_; }

  enum class Field : std::uint8_t {
    kLr, kBetas, kEps, kWeightDecay, kAmsgrad, kOptimBits, kMin8bitSize, kPlacement
  };
  bool is_set(Field field) const noexcept { return (set_ >> static_cast<int>(field)) & 1u; }
  // These options' set fields over `base`'s.
  AdamOptions over(const AdamOptions& base) const;
  // As the core takes them (octopage::ParamGroup::options): the state options as fields,
  // the hyperparameters by their names in the registry ("lr", "betas", ...; amsgrad 0/1).
  GroupOptions group_options() const;

  // For schedulers (torch::optim::LRScheduler).
  double get_lr() const override { return lr_; }
  void set_lr(const double value) override { lr(value); }

  // torch::optim::AdamOptions' keys (so each side reads the other's), plus optim_bits,
  // min_8bit_size and placement. Reading sets the fields the archive has.
  void serialize(::torch::serialize::InputArchive& archive) override;
  void serialize(::torch::serialize::OutputArchive& archive) const override;

 private:
  void mark(Field field) noexcept { set_ |= 1u << static_cast<int>(field); }

  double lr_ = 1e-3;
  betas_t betas_{0.9, 0.999};
  double eps_ = 1e-8;
  double weight_decay_ = 0.0;
  bool amsgrad_ = false;
  int optim_bits_ = 32;
  std::int64_t min_8bit_size_ = 4096;
  Placement placement_ = Placement::kDevice;
  std::uint32_t set_ = 0;
};

// What a named class fixes: its rule (a name of the registry, octopage/rules.h), its state
// bits (0: optim_bits decides) and whether it is paged.
struct Variant {
  const char* name;
  const char* rule;
  int bits;
  bool paged;
};

// The torch::optim::Optimizer every class below is. Errors are c10 errors: bad arguments
// throw c10::ValueError (TORCH_CHECK_VALUE), other failures c10::Error, with the core's
// message where the core found the problem.
//
// Each step() copies every group's options into the core and passes the current
// parameter and gradient buffers (a parameter without a gradient is skipped), so
// options edited through param_groups()[g].options() and schedulers take effect at the
// next step. A step runs on at::get_num_threads() threads unless OCTOPAGE_NUM_THREADS
// is set.
//
// torch::save(optimizer, path) / torch::load(optimizer, path) write and read
// torch::optim::Adam's archive layout: param_groups with their options, and per
// parameter its step and the rule's states (octopage::StateInfo, in the registry): for
// 32-bit state each under torch's name (exp_avg, exp_avg_sq, max_exp_avg_sq), for 8-bit
// state its codes under bitsandbytes' name (state1, state2) and its absmax under the
// matching absmax name (absmax1, absmax2). A rule's states need no code here. So a
// torch::optim::Adam(W) checkpoint loads here and a 32-bit one saved here loads into
// torch::optim::Adam(W). Loading takes the checkpoint's state and hyperparameters (lr,
// betas, eps, weight_decay); the state options (amsgrad, optim_bits, min_8bit_size,
// placement) stay this optimizer's, and the state is converted to them (see Note
// [Loading state] in src/engine/optimizer.cc): a checkpoint saved with state in RAM loads
// into an offloading optimizer. Parameters without state in the checkpoint start afresh.
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

  const char* name() const noexcept { return variant_.name; }
  // The core's rule: its name ("adam", "adamw"), hyperparameters and states.
  const RuleInfo& rule() const noexcept { return core_.rule(); }
  AdamOptions& options(std::size_t group);
  const AdamOptions& options(std::size_t group) const;

  // A copy of one parameter's state (step 0: none yet), wherever it lives.
  StateSnapshot core_state(std::size_t group, std::size_t index) const;
  MemoryReport memory_report() const;
  // The files that hold paged and offloaded state.
  std::vector<std::string> state_files() const;
  // Pushes paged state out of the fast tier until the next step (octopage::Optimizer::page_out).
  void page_out();
  const octopage::Optimizer& core() const noexcept { return core_; }

 protected:
  Optimizer(const std::vector<::torch::optim::OptimizerParamGroup>& param_groups,
            const AdamOptions& defaults, TierOptions tiers, const Variant& variant);

 private:
  void register_new_groups();
  // Copies every group's options and its parameters' buffers (and gradients' when
  // with_grads) into the core.
  void sync_core(bool with_grads);
  // The core's CUDA work goes on PyTorch's current stream when a parameter is on CUDA.
  void follow_torch_stream();

  Variant variant_;
  octopage::Optimizer core_;
};

// One class per bitsandbytes name: Adam is torch::optim::Adam (L2 weight decay, default
// 0), AdamW torch::optim::AdamW (decoupled, default 1e-2); 8bit classes keep 8-bit
// state, 32bit classes fp32 state, the plain names what optim_bits says (default 32);
// Paged classes place state `paged`. An 8bit/32bit class refuses another optim_bits in
// its defaults, a Paged class another placement. `tiers` says where `paged` and
// `offload` state goes (octopage::TierOptions).
#define OCTOPAGE_TORCH_OPTIMIZER(Name, rule_, bits_, paged_)                                   \
  class Name : public Optimizer {                                                              \
   public:                                                                                     \
    explicit Name(const std::vector<::torch::optim::OptimizerParamGroup>& param_groups,        \
                  const AdamOptions& defaults = {}, TierOptions tiers = {})                    \
        : Optimizer(param_groups, defaults, std::move(tiers),                                  \
                    Variant{#Name, rule_, bits_, paged_}) {}                                   \
    explicit Name(std::vector<::torch::Tensor> params, const AdamOptions& defaults = {},       \
                  TierOptions tiers = {})                                                      \
        : Name({::torch::optim::OptimizerParamGroup(std::move(params))}, defaults,             \
               std::move(tiers)) {}                                                            \
  }

OCTOPAGE_TORCH_OPTIMIZER(Adam, "adam", 0, false);
OCTOPAGE_TORCH_OPTIMIZER(Adam8bit, "adam", 8, false);
OCTOPAGE_TORCH_OPTIMIZER(Adam32bit, "adam", 32, false);
OCTOPAGE_TORCH_OPTIMIZER(PagedAdam, "adam", 0, true);
OCTOPAGE_TORCH_OPTIMIZER(PagedAdam8bit, "adam", 8, true);
OCTOPAGE_TORCH_OPTIMIZER(PagedAdam32bit, "adam", 32, true);
OCTOPAGE_TORCH_OPTIMIZER(AdamW, "adamw", 0, false);
OCTOPAGE_TORCH_OPTIMIZER(AdamW8bit, "adamw", 8, false);
OCTOPAGE_TORCH_OPTIMIZER(AdamW32bit, "adamw", 32, false);
OCTOPAGE_TORCH_OPTIMIZER(PagedAdamW, "adamw", 0, true);
OCTOPAGE_TORCH_OPTIMIZER(PagedAdamW8bit, "adamw", 8, true);
OCTOPAGE_TORCH_OPTIMIZER(PagedAdamW32bit, "adamw", 32, true);

#undef OCTOPAGE_TORCH_OPTIMIZER

}  // namespace octopage::torch
