// A param group's options for any octopage::torch optimizer: the rule's hyperparameters
// by their registry names (lr, betas, momentum, ...: octopage/rules.h) and octopage's
// state options, each set or unset. Not the typed per-rule classes (AdamOptions,
// SGDOptions, ...: rule_options.h), which are named views of this storage made with
// RuleOptions and OCTOPAGE_TORCH_ARG below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <c10/util/Exception.h>
#include <torch/optim/optimizer.h>

#include "octopage/options.h"

namespace octopage::torch {

// An option is either set (by a setter, the lr constructor, or a loaded archive) or
// unset. An optimizer fills the unset options of its defaults from its class (the rule's
// defaults: AdamW decays by 1e-2, Adam not at all; LAMB caps updates at max_unorm 1.0;
// 8bit classes keep 8-bit state, Paged classes place state `paged`), and a group's unset
// ones from the optimizer's defaults. So AdamW8bit(params, AdamOptions().lr(1e-2)) keeps
// 8-bit state and decays by 1e-2, and a group with weight_decay(0) decays by 0 whatever
// the defaults say. A hyperparameter the rule does not have is the core's error
// (c10::ValueError) when the options reach an optimizer.
class Options : public ::torch::optim::OptimizerOptions {
 public:
  Options() = default;
  Options(double lr);  // NOLINT(google-explicit-constructor): as torch::optim's options

  std::unique_ptr<::torch::optim::OptimizerOptions> clone() const override;

  // A hyperparameter by its name in the registry; a flag is 0 or 1, "betas" has two
  // values (three for AdEMAMix).
  Options& set(std::string_view name, double value) { return set(name, std::vector<double>{value}); }
  Options& set(std::string_view name, std::vector<double> values);
  // Whether a hyperparameter, or a state option by its name ("optim_bits", ...), is set.
  bool is_set(std::string_view name) const;
  // A hyperparameter's values: the set ones, else the rule's default (rule() below);
  // c10::ValueError when it is unset and the rule has no such hyperparameter.
  std::vector<double> values(std::string_view name) const;
  double get(std::string_view name) const;  // a one-value hyperparameter
  // The set hyperparameters, by name, in the order they were first set.
  const std::vector<Hyperparameter>& hyperparameters() const noexcept { return set_.hyperparameters(); }

  Options& lr(double value) { return set("lr", value); }
  double lr() const { return get("lr"); }

  // 32: fp32 state. 8: 8-bit block-wise state for parameters of at least min_8bit_size
  // elements (fp32 state for smaller ones). bitsandbytes' percentile_clipping (100: off)
  // and max_unorm (0: off) as octopage::GroupOptions has them. Unset, each reads as
  // GroupOptions' default, max_unorm as the rule's (RuleInfo::default_max_unorm).
  Options& optim_bits(int value);
  Options& min_8bit_size(std::int64_t value);
  Options& placement(Placement value);
  Options& percentile_clipping(int value);
  Options& max_unorm(double value);
  int optim_bits() const noexcept;
  std::int64_t min_8bit_size() const noexcept;
  Placement placement() const noexcept;
  int percentile_clipping() const noexcept;
  double max_unorm() const;

  // The rule whose defaults unset hyperparameters read as, and whose kinds (flag or
  // number) the archive writes: the typed class's (AdamOptions: "adam"), an optimizer's
  // own for the options it holds; "" for Options made directly.
  const std::string& rule() const noexcept { return rule_; }

  // These options' set fields over `base`'s (and base's rule).
  Options over(const Options& base) const;
  // As the core takes them (octopage::ParamGroup::options): the set hyperparameters by
  // name, the state options as fields (unset ones at their defaults, as above).
  GroupOptions group_options() const;

  // For schedulers (torch::optim::LRScheduler).
  double get_lr() const override { return lr(); }
  void set_lr(const double value) override { lr(value); }

  // torch::optim's keys and value types (lr, betas as a tuple, amsgrad as a bool, ...),
  // so each side reads the other's archives, plus the state options by their names.
  // Reading sets what the archive has; any key but the state options' is read as a
  // hyperparameter (a number, a flag, or a tuple or list of numbers).
  void serialize(::torch::serialize::InputArchive& archive) override;
  void serialize(::torch::serialize::OutputArchive& archive) const override;

 protected:
  void set_rule(std::string rule) { rule_ = std::move(rule); }

 private:
  friend class Optimizer;

  GroupOptions set_;  // its hyperparameters only: the state options are below
  std::optional<int> optim_bits_;
  std::optional<std::int64_t> min_8bit_size_;
  std::optional<Placement> placement_;
  std::optional<int> percentile_clipping_;
  std::optional<double> max_unorm_;
  std::string rule_;
};

namespace detail {

// A typed option's value as the registry's values, and back (OCTOPAGE_TORCH_ARG).
inline std::vector<double> to_values(double value) { return {value}; }
inline std::vector<double> to_values(bool value) { return {value ? 1.0 : 0.0}; }
template <class... T>
std::vector<double> to_values(const std::tuple<T...>& value) {
  return std::apply([](auto... v) { return std::vector<double>{static_cast<double>(v)...}; }, value);
}

template <class T>
struct FromValues;
template <>
struct FromValues<double> {
  static constexpr std::size_t kSize = 1;
  static double make(const std::vector<double>& v) { return v[0]; }
};
template <>
struct FromValues<bool> {
  static constexpr std::size_t kSize = 1;
  static bool make(const std::vector<double>& v) { return v[0] != 0.0; }
};
template <class... T>
struct FromValues<std::tuple<T...>> {
  static constexpr std::size_t kSize = sizeof...(T);
  static std::tuple<T...> make(const std::vector<double>& v) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) { return std::tuple<T...>{static_cast<T>(v[I])...}; }(
        std::index_sequence_for<T...>{});
  }
};

template <class T>
T from_values(std::string_view name, const std::vector<double>& values) {
  TORCH_CHECK_VALUE(values.size() == FromValues<T>::kSize, "expected ", FromValues<T>::kSize, " value(s) of ", name,
                    ", got ", values.size());
  return FromValues<T>::make(values);
}

}  // namespace detail

// A typed option: `OCTOPAGE_TORCH_ARG(double, momentum)` in a RuleOptions class gives it
// torch::optim's setter, momentum(0.9) (chaining, returning the class), and getter,
// momentum() (the set value, else the rule's default). T is double, bool or a tuple of
// doubles (betas).
#define OCTOPAGE_TORCH_ARG(T, name)                                                               \
  auto& name(const T& value) { return this->set(#name, ::octopage::torch::detail::to_values(value)); } \
  T name() const { return ::octopage::torch::detail::from_values<T>(#name, this->values(#name)); }

// The base of a typed options class: Derived names its rule (kRule, whose defaults its
// unset options read as) and lists its hyperparameters with OCTOPAGE_TORCH_ARG; lr and
// the state options are here. Every setter returns Derived&, so options chain as
// torch::optim's do: SGDOptions(0.1).momentum(0.9).nesterov(true).optim_bits(8).
template <class Derived>
class RuleOptions : public Options {
 public:
  RuleOptions() { set_rule(Derived::kRule); }
  RuleOptions(double lr) : RuleOptions() { Options::lr(lr); }  // NOLINT(google-explicit-constructor)
  // The same options viewed as Derived (the optimizer's defaults and groups).
  explicit RuleOptions(const Options& options) : Options(options) {}

  std::unique_ptr<::torch::optim::OptimizerOptions> clone() const override {
    return std::make_unique<Derived>(self());
  }

  Derived& set(std::string_view name, double value) { Options::set(name, value); return self(); }
  Derived& set(std::string_view name, std::vector<double> values) {
    Options::set(name, std::move(values));
    return self();
  }

  OCTOPAGE_TORCH_ARG(double, lr)

  using Options::max_unorm;
  using Options::min_8bit_size;
  using Options::optim_bits;
  using Options::percentile_clipping;
  using Options::placement;
  Derived& optim_bits(int value) { Options::optim_bits(value); return self(); }
  Derived& min_8bit_size(std::int64_t value) { Options::min_8bit_size(value); return self(); }
  Derived& placement(Placement value) { Options::placement(value); return self(); }
  Derived& percentile_clipping(int value) { Options::percentile_clipping(value); return self(); }
  Derived& max_unorm(double value) { Options::max_unorm(value); return self(); }

 protected:
  Derived& self() { return static_cast<Derived&>(*this); }
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

}  // namespace octopage::torch
