// The update rules octopage knows, as data: what each one is called, which
// hyperparameters it takes (with torch.optim's names, defaults and valid ranges) and
// which states it keeps (with torch's and bitsandbytes' state_dict names). Adapters read
// this instead of knowing any rule, so a rule added to the registry (src/rules) is
// usable from C++, LibTorch and Python without new code there.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace octopage {

enum class HyperparameterKind : std::uint8_t {
  kReal,  // a number in [min, max] (max excluded when max_exclusive)
  kFlag,  // 0 (False) or 1 (True)
};

struct HyperparameterInfo {
  std::string name;              // torch.optim's: "lr", "betas", "momentum", ...
  std::vector<double> defaults;  // one value per element ("betas" has two)
  HyperparameterKind kind = HyperparameterKind::kReal;
  double min = 0.0;
  double max = 0.0;  // +inf: no upper bound (the value must still be finite)
  bool max_exclusive = false;
};

struct StateInfo {
  std::string name;      // torch.optim's state_dict key: "exp_avg", "momentum_buffer", ...
  std::string bnb_name;  // bitsandbytes': "state1", "state2", ...
  bool is_signed = true;  // 8-bit: the signed or the unsigned dynamic code
};

// A rule's state depends on some hyperparameters (amsgrad adds a state; SGD without
// momentum has none): each such choice is a variant, fixed when a parameter's state is
// created.
struct VariantInfo {
  std::string name;  // what selects it, as a user writes it: "amsgrad=True"
  std::vector<StateInfo> states;
  bool quantizable = true;  // may its states be 8-bit (optim_bits=8)?
  std::string quantizable_alternative;  // when not: the setting that is ("amsgrad=False")
};

struct RuleInfo {
  std::string name;          // as the Optimizer takes it: "adamw"
  std::string display_name;  // as messages and tables show it: "AdamW"
  std::vector<HyperparameterInfo> hyperparameters;
  std::vector<VariantInfo> variants;
  // The update-norm cap its classes default to (GroupOptions::max_unorm): bitsandbytes'
  // LAMB 1.0, LARS 0.02; 0 (off) for the others.
  double default_max_unorm = 0.0;

  const HyperparameterInfo* find_hyperparameter(std::string_view name) const;
};

// Every registered rule, in registry order.
const std::vector<RuleInfo>& registered_rules();
// The rule called `name`; throws Error(kInvalidArgument) naming the registered rules when
// there is none.
const RuleInfo& find_rule(std::string_view name);

}  // namespace octopage
