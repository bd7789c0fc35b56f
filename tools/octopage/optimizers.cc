// The command line's optimizer choices, generated from the rule registry (optimizers.h).
#include "tools/octopage/optimizers.h"

#include <cctype>

#include "octopage/rules.h"

namespace octopage::cli {
namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::vector<OptimizerChoice> make_choices() {
  struct Tier {
    Placement placement;
    const char* key_prefix;
    const char* name_prefix;
  };
  constexpr Tier kTiers[] = {{Placement::kDevice, "", ""},
                             {Placement::kPaged, "paged-", "Paged"},
                             {Placement::kOffload, "offload-", "offloaded "}};
  std::vector<OptimizerChoice> choices;
  for (const RuleInfo& rule : registered_rules()) {
    for (const Tier& tier : kTiers) {
      for (int bits : {32, 8}) {
        const std::string suffix = bits == 8 ? "8bit" : "";
        choices.push_back({tier.key_prefix + lower(rule.display_name) + suffix,
                           tier.name_prefix + rule.display_name + suffix, rule.name, bits, tier.placement, false});
      }
    }
  }
  choices.push_back({"torch-adamw", "torch AdamW", "adamw", 32, Placement::kDevice, true});
  return choices;
}

}  // namespace

std::string OptimizerChoice::class_name() const {
  return find_rule(rule).display_name + (bits == 8 ? "8bit" : "32bit");
}

const std::vector<OptimizerChoice>& optimizer_choices() {
  static const std::vector<OptimizerChoice> choices = make_choices();
  return choices;
}

const OptimizerChoice* find_optimizer(std::string_view key) {
  for (const OptimizerChoice& c : optimizer_choices()) {
    if (c.key == key) return &c;
  }
  return nullptr;
}

std::string optimizer_keys() {
  std::string keys;
  for (const OptimizerChoice& c : optimizer_choices()) keys += (keys.empty() ? "" : ", ") + c.key;
  return keys;
}

const OptimizerChoice* device_twin(const OptimizerChoice& c) {
  if (c.torch_reference || c.placement == Placement::kDevice) return nullptr;
  for (const OptimizerChoice& d : optimizer_choices()) {
    if (!d.torch_reference && d.placement == Placement::kDevice && d.rule == c.rule && d.bits == c.bits) return &d;
  }
  return nullptr;
}

}  // namespace octopage::cli
