// octopage's optimizers for LibTorch training loops: every registered rule with 32-bit or
// 8-bit state, placed on the device, paged or offloaded, as torch::optim::Optimizer
// subclasses with bitsandbytes' class names (AdamW8bit, PagedLion, SGD32bit, LARS, ...)
// over the core octopage::Optimizer. They update dense, contiguous fp32, bf16 and fp16
// tensors in place: CPU tensors always, CUDA tensors too when octopage is built with
// -DOCTOPAGE_CUDA=ON (README, "The CUDA backend"). The C++ twin of python/octopage/optim.
#pragma once

#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "octopage/torch/optimizer.h"
#include "octopage/torch/options.h"
#include "octopage/torch/rule_options.h"

namespace octopage::torch {

// Every rule's classes, one line each: X(Name, rule, TypedOptions, paging) makes Name
// (optim_bits decides its state bits, default 32), Name8bit (8-bit state) and Name32bit
// (fp32 state), and with paging `paged` PagedName, PagedName8bit and PagedName32bit
// (state placed `paged`), as bitsandbytes has them. Each takes TypedOptions, or any
// Options; an 8bit/32bit class refuses another optim_bits in its defaults, a Paged class
// another placement. Adam is torch::optim::Adam (L2 weight decay, default 0), AdamW
// torch::optim::AdamW (decoupled, default 1e-2).
#define OCTOPAGE_TORCH_RULES(X)                      \
  X(Adam, "adam", AdamOptions, paged)                \
  X(AdamW, "adamw", AdamOptions, paged)              \
  X(SGD, "sgd", SGDOptions, unpaged)                 \
  X(Lion, "lion", LionOptions, paged)                \
  X(RMSprop, "rmsprop", RMSpropOptions, unpaged)     \
  X(Adagrad, "adagrad", AdagradOptions, unpaged)     \
  X(AdEMAMix, "ademamix", AdEMAMixOptions, paged)    \
  X(LAMB, "lamb", LAMBOptions, unpaged)              \
  X(LARS, "lars", LARSOptions, unpaged)

// One class. `tiers` says where `paged` and `offload` state goes (octopage::TierOptions).
#define OCTOPAGE_TORCH_CLASS(Name, rule_, TypedOptions, bits_, paged_)                            \
  class Name : public Optimizer {                                                                 \
   public:                                                                                        \
    using options_type = TypedOptions;                                                            \
    static constexpr ClassInfo kClass{#Name, rule_, bits_, paged_, &make_options_as<TypedOptions>}; \
    explicit Name(const std::vector<::torch::optim::OptimizerParamGroup>& param_groups,           \
                  const Options& defaults = {}, TierOptions tiers = {})                           \
        : Optimizer(param_groups, defaults, std::move(tiers), kClass) {}                          \
    explicit Name(std::vector<::torch::Tensor> params, const Options& defaults = {},              \
                  TierOptions tiers = {})                                                         \
        : Name({::torch::optim::OptimizerParamGroup(std::move(params))}, defaults,                \
               std::move(tiers)) {}                                                               \
    TypedOptions& options(std::size_t group) { return options_as<TypedOptions>(group); }          \
    const TypedOptions& options(std::size_t group) const { return options_as<TypedOptions>(group); } \
  }

#define OCTOPAGE_TORCH_KINDS(Name, rule, TypedOptions, paged)       \
  OCTOPAGE_TORCH_CLASS(Name, rule, TypedOptions, 0, paged);         \
  OCTOPAGE_TORCH_CLASS(Name##8bit, rule, TypedOptions, 8, paged);   \
  OCTOPAGE_TORCH_CLASS(Name##32bit, rule, TypedOptions, 32, paged);
#define OCTOPAGE_TORCH_PAGING_paged(Name, rule, TypedOptions) \
  OCTOPAGE_TORCH_KINDS(Paged##Name, rule, TypedOptions, true)
#define OCTOPAGE_TORCH_PAGING_unpaged(Name, rule, TypedOptions)
#define OCTOPAGE_TORCH_DECLARE(Name, rule, TypedOptions, paging) \
  OCTOPAGE_TORCH_KINDS(Name, rule, TypedOptions, false)          \
  OCTOPAGE_TORCH_PAGING_##paging(Name, rule, TypedOptions)

OCTOPAGE_TORCH_RULES(OCTOPAGE_TORCH_DECLARE)

// Every class above as data, in the list's order (for each rule: Name, Name8bit,
// Name32bit, then its Paged classes), so code can pick a class by name or by rule.
struct OptimizerClass {
  const ClassInfo* info;
  std::unique_ptr<Optimizer> (*make)(const std::vector<::torch::optim::OptimizerParamGroup>& param_groups,
                                     const Options& defaults, TierOptions tiers);
};
const std::vector<OptimizerClass>& optimizer_classes();
// The class called `name` ("AdamW8bit"), or nullptr.
const OptimizerClass* find_optimizer_class(std::string_view name);
// An optimizer of the class called `name`; c10::ValueError naming the classes when there
// is none.
std::unique_ptr<Optimizer> make_optimizer(std::string_view name, std::vector<::torch::Tensor> params,
                                          const Options& defaults = {}, TierOptions tiers = {});

}  // namespace octopage::torch
