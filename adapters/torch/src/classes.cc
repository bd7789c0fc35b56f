// The table of every named class (optim.h's OCTOPAGE_TORCH_RULES), so that a class can be
// picked by name at run time (the `octopage` command line, tests over every rule).
#include <string>

#include "adapters/torch/src/errors.h"
#include "octopage/torch/optim.h"

namespace octopage::torch {
namespace {

template <class Class>
std::unique_ptr<Optimizer> make_as(const std::vector<::torch::optim::OptimizerParamGroup>& param_groups,
                                   const Options& defaults, TierOptions tiers) {
  return std::make_unique<Class>(param_groups, defaults, std::move(tiers));
}

#define OCTOPAGE_TORCH_ROW(Name) {&Name::kClass, &make_as<Name>},
#define OCTOPAGE_TORCH_ROWS(Name) OCTOPAGE_TORCH_ROW(Name) OCTOPAGE_TORCH_ROW(Name##8bit) OCTOPAGE_TORCH_ROW(Name##32bit)
#define OCTOPAGE_TORCH_PAGED_ROWS_paged(Name) OCTOPAGE_TORCH_ROWS(Paged##Name)
#define OCTOPAGE_TORCH_PAGED_ROWS_unpaged(Name)
#define OCTOPAGE_TORCH_TABLE(Name, rule, TypedOptions, paging) \
  OCTOPAGE_TORCH_ROWS(Name) OCTOPAGE_TORCH_PAGED_ROWS_##paging(Name)

}  // namespace

const std::vector<OptimizerClass>& optimizer_classes() {
  static const std::vector<OptimizerClass> classes = {OCTOPAGE_TORCH_RULES(OCTOPAGE_TORCH_TABLE)};
  return classes;
}

const OptimizerClass* find_optimizer_class(std::string_view name) {
  for (const OptimizerClass& c : optimizer_classes()) {
    if (name == c.info->name) return &c;
  }
  return nullptr;
}

std::unique_ptr<Optimizer> make_optimizer(std::string_view name, std::vector<::torch::Tensor> params,
                                          const Options& defaults, TierOptions tiers) {
  const OptimizerClass* c = find_optimizer_class(name);
  if (c == nullptr) {
    std::string names;
    for (const OptimizerClass& known : optimizer_classes()) names += (names.empty() ? "" : ", ") + std::string(known.info->name);
    TORCH_CHECK_VALUE(false, "expected an optimizer class among ", names, ", got '", name, "'");
  }
  return c->make({::torch::optim::OptimizerParamGroup(std::move(params))}, defaults, std::move(tiers));
}

}  // namespace octopage::torch
