#include "src/rules/registry.h"

#include <string>

#include "octopage/error.h"

namespace octopage::rules {
namespace {

VariantInfo variant_info(const RowSpec& spec) {
  VariantInfo v;
  v.name = spec.variant;
  v.quantizable = spec.quantizable;
  if (!spec.quantizable) v.quantizable_alternative = spec.quantizable_alternative;
  for (int k = 0; k < spec.num_states; ++k) {
    v.states.push_back({spec.states[k].name, spec.states[k].bnb_name, spec.states[k].is_signed});
  }
  return v;
}

HyperparameterInfo hyperparameter_info(const HyperSpec& spec) {
  HyperparameterInfo h;
  h.name = spec.name;
  h.defaults.assign(spec.defaults, spec.defaults + spec.arity);
  h.kind = spec.kind == HyperKind::kFlag ? HyperparameterKind::kFlag : HyperparameterKind::kReal;
  h.min = spec.min;
  h.max = spec.max;
  h.max_exclusive = spec.max_exclusive;
  return h;
}

struct Registry {
  std::vector<RuleEntry> entries;
  std::vector<RowSpec> rows;
  std::vector<RuleInfo> infos;
};

const Registry& registry() {
  static const Registry r = [] {
    Registry out;
    for_each_row(RegisteredRules{}, [&]<class Rule, class Row>(int row) {
      if (out.entries.empty() || out.entries.back().info.name != Rule::kName) {
        RuleEntry e;
        e.info.name = Rule::kName;
        e.info.display_name = Rule::kDisplayName;
        if constexpr (requires { Rule::kDefaultMaxUnorm; }) e.info.default_max_unorm = Rule::kDefaultMaxUnorm;
        for (const HyperSpec& h : Rule::kHyperparameters) {
          e.hyperparameters.push_back(h);
          e.info.hyperparameters.push_back(hyperparameter_info(h));
          e.num_slots += h.arity;
        }
        e.first_row = row;
        e.row = &Rule::row;
        e.check = &Rule::check;
        e.scalars = &Rule::scalars;
        e.oracle = &Rule::oracle;
        e.step_norm2 = &Rule::step_norm2;
        e.scale_step = &Rule::scale_step;
        out.entries.push_back(std::move(e));
      }
      RuleEntry& e = out.entries.back();
      ++e.num_rows;
      e.info.variants.push_back(variant_info(Row::kSpec));
      out.rows.push_back(Row::kSpec);
    });
    for (const RuleEntry& e : out.entries) out.infos.push_back(e.info);
    return out;
  }();
  return r;
}

}  // namespace

const std::vector<RuleEntry>& rule_entries() { return registry().entries; }

const RuleEntry& rule_entry(std::string_view name) {
  std::string names;
  for (const RuleEntry& e : rule_entries()) {
    if (e.info.name == name) return e;
    names += (names.empty() ? "'" : ", '") + e.info.name + "'";
  }
  detail::throw_error(ErrorKind::kInvalidArgument, "expected a rule among ", names, ", got '", name, "'");
}

const RowSpec& row_spec(int row) { return registry().rows.at(static_cast<std::size_t>(row)); }

}  // namespace octopage::rules

namespace octopage {

const HyperparameterInfo* RuleInfo::find_hyperparameter(std::string_view name) const {
  for (const HyperparameterInfo& h : hyperparameters) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

const std::vector<RuleInfo>& registered_rules() { return rules::registry().infos; }

const RuleInfo& find_rule(std::string_view name) { return rules::rule_entry(name).info; }

}  // namespace octopage
