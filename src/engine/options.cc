// GroupOptions' named hyperparameters and StateSnapshot's named arrays.
#include <algorithm>

#include "octopage/error.h"
#include "octopage/optimizer.h"
#include "octopage/options.h"
#include "src/rules/registry.h"

namespace octopage {

GroupOptions& GroupOptions::set(std::string_view name, std::vector<double> values) {
  for (Hyperparameter& h : hyperparameters_) {
    if (h.name == name) {
      h.values = std::move(values);
      return *this;
    }
  }
  hyperparameters_.push_back({std::string(name), std::move(values)});
  return *this;
}

const Hyperparameter* GroupOptions::find(std::string_view name) const {
  for (const Hyperparameter& h : hyperparameters_) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

const std::vector<double>& GroupOptions::values(std::string_view name) const {
  const Hyperparameter* h = find(name);
  OCTOPAGE_CHECK(h != nullptr, "expected a hyperparameter '", name, "' in the options, got none");
  return h->values;
}

double GroupOptions::get(std::string_view name) const {
  const std::vector<double>& v = values(name);
  OCTOPAGE_CHECK(v.size() == 1, "expected one value of '", name, "', got ", v.size());
  return v[0];
}

void GroupOptions::erase(std::string_view name) {
  std::erase_if(hyperparameters_, [&](const Hyperparameter& h) { return h.name == name; });
}

GroupOptions default_options(std::string_view rule) {
  const RuleInfo& info = find_rule(rule);
  GroupOptions options;
  for (const HyperparameterInfo& h : info.hyperparameters) options.set(h.name, h.defaults);
  options.max_unorm = info.default_max_unorm;
  return options;
}

const StateArray* StateSnapshot::find(std::string_view name) const {
  for (const StateArray& a : arrays) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

StateArray* StateSnapshot::find(std::string_view name) {
  return const_cast<StateArray*>(std::as_const(*this).find(name));
}

const StateArray& StateSnapshot::at(std::string_view name) const {
  const StateArray* a = find(name);
  OCTOPAGE_CHECK(a != nullptr, "expected a state array '", name, "', got none");
  return *a;
}

}  // namespace octopage
