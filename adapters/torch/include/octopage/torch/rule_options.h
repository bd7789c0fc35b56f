// The typed options of each rule, with torch::optim's (and bitsandbytes') setter names:
// SGDOptions(0.1).momentum(0.9).nesterov(true). Each is its rule's field list over
// RuleOptions (options.h), which adds lr and the state options; a new hyperparameter is
// one OCTOPAGE_TORCH_ARG line here (Options::set(name, value) takes it without one).
// Not a second copy of the defaults: unset options read as the registry's.
#pragma once

#include <tuple>

#include "octopage/torch/options.h"

namespace octopage::torch {

// torch::optim::AdamOptions' fields: Adam and AdamW (which decays by 1e-2 by default).
class AdamOptions : public RuleOptions<AdamOptions> {
 public:
  static constexpr const char* kRule = "adam";
  using betas_t = std::tuple<double, double>;
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(betas_t, betas)
  OCTOPAGE_TORCH_ARG(double, eps)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
  OCTOPAGE_TORCH_ARG(bool, amsgrad)
};

// torch::optim::SGDOptions' fields.
class SGDOptions : public RuleOptions<SGDOptions> {
 public:
  static constexpr const char* kRule = "sgd";
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(double, momentum)
  OCTOPAGE_TORCH_ARG(double, dampening)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
  OCTOPAGE_TORCH_ARG(bool, nesterov)
};

// bitsandbytes' Lion: betas (interpolation, momentum), decoupled weight decay.
class LionOptions : public RuleOptions<LionOptions> {
 public:
  static constexpr const char* kRule = "lion";
  using betas_t = std::tuple<double, double>;
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(betas_t, betas)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
};

// torch::optim::RMSpropOptions' fields.
class RMSpropOptions : public RuleOptions<RMSpropOptions> {
 public:
  static constexpr const char* kRule = "rmsprop";
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(double, alpha)
  OCTOPAGE_TORCH_ARG(double, eps)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
  OCTOPAGE_TORCH_ARG(double, momentum)
  OCTOPAGE_TORCH_ARG(bool, centered)
};

// torch::optim::AdagradOptions' fields.
class AdagradOptions : public RuleOptions<AdagradOptions> {
 public:
  static constexpr const char* kRule = "adagrad";
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(double, lr_decay)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
  OCTOPAGE_TORCH_ARG(double, initial_accumulator_value)
  OCTOPAGE_TORCH_ARG(double, eps)
};

// bitsandbytes' AdEMAMix: three betas (fast EMA, second moment, slow EMA), the slow EMA's
// weight alpha and the warm-ups t_alpha and t_beta3 (0: off).
class AdEMAMixOptions : public RuleOptions<AdEMAMixOptions> {
 public:
  static constexpr const char* kRule = "ademamix";
  using betas_t = std::tuple<double, double, double>;
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(betas_t, betas)
  OCTOPAGE_TORCH_ARG(double, alpha)
  OCTOPAGE_TORCH_ARG(double, t_alpha)
  OCTOPAGE_TORCH_ARG(double, t_beta3)
  OCTOPAGE_TORCH_ARG(double, eps)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
};

// bitsandbytes' LAMB: AdamW's fields under max_unorm (default 1.0).
class LAMBOptions : public RuleOptions<LAMBOptions> {
 public:
  static constexpr const char* kRule = "lamb";
  using betas_t = std::tuple<double, double>;
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(betas_t, betas)
  OCTOPAGE_TORCH_ARG(double, eps)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
};

// bitsandbytes' LARS: SGD's fields (a momentum > 0) under max_unorm (default 0.02).
class LARSOptions : public RuleOptions<LARSOptions> {
 public:
  static constexpr const char* kRule = "lars";
  using RuleOptions::RuleOptions;
  OCTOPAGE_TORCH_ARG(double, momentum)
  OCTOPAGE_TORCH_ARG(double, dampening)
  OCTOPAGE_TORCH_ARG(double, weight_decay)
  OCTOPAGE_TORCH_ARG(bool, nesterov)
};

}  // namespace octopage::torch
