// octopage::torch::Options: set and unset options, their conversion to the core's
// GroupOptions, and their archive form (torch::optim's keys and value types). Rule
// knowledge comes from the registry only: which hyperparameters exist, their defaults
// and whether one is a flag.
#include "octopage/torch/options.h"

#include <string>
#include <utility>
#include <vector>

#include <torch/serialize/archive.h>

#include "adapters/torch/src/errors.h"
#include "octopage/rules.h"

namespace octopage::torch {
namespace {

constexpr const char* kOptimBits = "optim_bits";
constexpr const char* kMin8bitSize = "min_8bit_size";
constexpr const char* kPlacement = "placement";
constexpr const char* kPercentileClipping = "percentile_clipping";
constexpr const char* kMaxUnorm = "max_unorm";

Placement placement_from(const std::string& name) {
  for (Placement p : {Placement::kDevice, Placement::kPaged, Placement::kOffload, Placement::kCpuStep}) {
    if (name == placement_name(p)) return p;
  }
  TORCH_CHECK_VALUE(false, "expected placement 'device', 'paged', 'offload' or 'cpu_step', got '", name, "'");
}

const RuleInfo* rule_info(const std::string& rule) {
  if (rule.empty()) return nullptr;
  return &translated([&]() -> const RuleInfo& { return find_rule(rule); });
}

std::string hyperparameter_names(const RuleInfo& rule) {
  std::string names;
  for (const HyperparameterInfo& h : rule.hyperparameters) names += (names.empty() ? "" : ", ") + h.name;
  return names;
}

// A hyperparameter as torch::optim writes it: a flag as a bool, one value as a double,
// several (betas) as a tuple of doubles.
c10::IValue ivalue_of(const std::vector<double>& values, bool flag) {
  if (values.size() == 1) return flag ? c10::IValue(values[0] != 0.0) : c10::IValue(values[0]);
  std::vector<c10::IValue> elements(values.begin(), values.end());
  return c10::IValue(c10::ivalue::Tuple::create(std::move(elements)));
}

double number_of(const std::string& key, const c10::IValue& v) {
  if (v.isDouble()) return v.toDouble();
  if (v.isInt()) return static_cast<double>(v.toInt());
  if (v.isBool()) return v.toBool() ? 1.0 : 0.0;
  TORCH_CHECK_VALUE(false, "expected option ", key, " in the checkpoint to be a number, a flag, or a tuple or list "
                    "of numbers, got ", v.tagKind());
}

std::vector<double> values_of(const std::string& key, const c10::IValue& v) {
  std::vector<double> values;
  if (v.isTuple()) {
    for (const c10::IValue& element : v.toTupleRef().elements()) values.push_back(number_of(key, element));
  } else if (v.isList()) {
    for (const c10::IValue& element : v.toListRef()) values.push_back(number_of(key, element));
  } else {
    values.push_back(number_of(key, v));
  }
  return values;
}

}  // namespace

Options::Options(double value) { lr(value); }

std::unique_ptr<::torch::optim::OptimizerOptions> Options::clone() const { return std::make_unique<Options>(*this); }

Options& Options::set(std::string_view name, std::vector<double> values) {
  set_.set(name, std::move(values));
  return *this;
}

bool Options::is_set(std::string_view name) const {
  if (name == kOptimBits) return optim_bits_.has_value();
  if (name == kMin8bitSize) return min_8bit_size_.has_value();
  if (name == kPlacement) return placement_.has_value();
  if (name == kPercentileClipping) return percentile_clipping_.has_value();
  if (name == kMaxUnorm) return max_unorm_.has_value();
  return set_.has(name);
}

std::vector<double> Options::values(std::string_view name) const {
  if (const Hyperparameter* h = set_.find(name)) return h->values;
  const RuleInfo* rule = rule_info(rule_);
  TORCH_CHECK_VALUE(rule != nullptr, "expected option ", name, " to be set (these options have no rule to take its "
                    "default from), got it unset");
  const HyperparameterInfo* h = rule->find_hyperparameter(name);
  TORCH_CHECK_VALUE(h != nullptr, "expected a hyperparameter of ", rule->display_name, " (",
                    hyperparameter_names(*rule), "), got ", name);
  return h->defaults;
}

double Options::get(std::string_view name) const {
  const std::vector<double> v = values(name);
  TORCH_CHECK_VALUE(v.size() == 1, "expected one value of ", name, ", got ", v.size());
  return v[0];
}

Options& Options::optim_bits(int value) { optim_bits_ = value; return *this; }
Options& Options::min_8bit_size(std::int64_t value) { min_8bit_size_ = value; return *this; }
Options& Options::placement(Placement value) { placement_ = value; return *this; }
Options& Options::percentile_clipping(int value) { percentile_clipping_ = value; return *this; }
Options& Options::max_unorm(double value) { max_unorm_ = value; return *this; }

int Options::optim_bits() const noexcept { return optim_bits_.value_or(GroupOptions{}.optim_bits); }
std::int64_t Options::min_8bit_size() const noexcept { return min_8bit_size_.value_or(GroupOptions{}.min_8bit_size); }
Placement Options::placement() const noexcept { return placement_.value_or(GroupOptions{}.placement); }
int Options::percentile_clipping() const noexcept {
  return percentile_clipping_.value_or(GroupOptions{}.percentile_clipping);
}
double Options::max_unorm() const {
  if (max_unorm_) return *max_unorm_;
  const RuleInfo* rule = rule_info(rule_);
  return rule != nullptr ? rule->default_max_unorm : GroupOptions{}.max_unorm;
}

Options Options::over(const Options& base) const {
  Options r = base;
  for (const Hyperparameter& h : set_.hyperparameters()) r.set_.set(h.name, h.values);
  if (optim_bits_) r.optim_bits_ = optim_bits_;
  if (min_8bit_size_) r.min_8bit_size_ = min_8bit_size_;
  if (placement_) r.placement_ = placement_;
  if (percentile_clipping_) r.percentile_clipping_ = percentile_clipping_;
  if (max_unorm_) r.max_unorm_ = max_unorm_;
  return r;
}

GroupOptions Options::group_options() const {
  GroupOptions g = set_;
  g.optim_bits = optim_bits();
  g.min_8bit_size = min_8bit_size();
  g.placement = placement();
  g.percentile_clipping = percentile_clipping();
  g.max_unorm = max_unorm();
  return g;
}

void Options::serialize(::torch::serialize::OutputArchive& archive) const {
  const RuleInfo* rule = rule_info(rule_);
  for (const Hyperparameter& h : set_.hyperparameters()) {
    const HyperparameterInfo* info = rule != nullptr ? rule->find_hyperparameter(h.name) : nullptr;
    archive.write(h.name, ivalue_of(h.values, info != nullptr && info->kind == HyperparameterKind::kFlag));
  }
  if (optim_bits_) archive.write(kOptimBits, c10::IValue(static_cast<std::int64_t>(*optim_bits_)));
  if (min_8bit_size_) archive.write(kMin8bitSize, c10::IValue(*min_8bit_size_));
  if (placement_) archive.write(kPlacement, c10::IValue(std::string(placement_name(*placement_))));
  if (percentile_clipping_) {
    archive.write(kPercentileClipping, c10::IValue(static_cast<std::int64_t>(*percentile_clipping_)));
  }
  if (max_unorm_) archive.write(kMaxUnorm, c10::IValue(*max_unorm_));
}

void Options::serialize(::torch::serialize::InputArchive& archive) {
  for (const std::string& key : archive.keys()) {
    c10::IValue v;
    if (!archive.try_read(key, v)) continue;  // a nested archive: not an option
    if (key == kOptimBits) {
      optim_bits(static_cast<int>(number_of(key, v)));
    } else if (key == kMin8bitSize) {
      min_8bit_size(static_cast<std::int64_t>(number_of(key, v)));
    } else if (key == kPlacement) {
      TORCH_CHECK_VALUE(v.isString(), "expected option placement in the checkpoint to be a string, got ", v.tagKind());
      placement(placement_from(v.toStringRef()));
    } else if (key == kPercentileClipping) {
      percentile_clipping(static_cast<int>(number_of(key, v)));
    } else if (key == kMaxUnorm) {
      max_unorm(number_of(key, v));
    } else {
      set(key, values_of(key, v));
    }
  }
}

}  // namespace octopage::torch
