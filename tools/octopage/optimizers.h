// The optimizers the `octopage` command line knows, by the key a user types: octopage's
// AdamW with 32-bit or 8-bit state in each placement, as bitsandbytes names them, and
// LibTorch's own torch::optim::AdamW as the reference. Framework-free: train.cc makes
// them, memory.cc plans them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "octopage/options.h"

namespace octopage::cli {

struct OptimizerChoice {
  std::string key;       // what --optimizer takes
  std::string name;      // what tables print
  int bits;              // state bits
  Placement placement;
  bool torch_reference;  // torch::optim::AdamW rather than octopage's
};

inline const std::vector<OptimizerChoice>& optimizer_choices() {
  static const std::vector<OptimizerChoice> choices = {
      {"adamw", "AdamW", 32, Placement::kDevice, false},
      {"adamw8bit", "AdamW8bit", 8, Placement::kDevice, false},
      {"paged-adamw", "PagedAdamW", 32, Placement::kPaged, false},
      {"paged-adamw8bit", "PagedAdamW8bit", 8, Placement::kPaged, false},
      {"offload-adamw", "offloaded AdamW", 32, Placement::kOffload, false},
      {"offload-adamw8bit", "offloaded AdamW8bit", 8, Placement::kOffload, false},
      {"torch-adamw", "torch AdamW", 32, Placement::kDevice, true},
  };
  return choices;
}

// nullptr when there is no such key.
inline const OptimizerChoice* find_optimizer(std::string_view key) {
  for (const OptimizerChoice& c : optimizer_choices()) {
    if (c.key == key) return &c;
  }
  return nullptr;
}

// "adamw, adamw8bit, ..., torch-adamw", for messages.
inline std::string optimizer_keys() {
  std::string keys;
  for (const OptimizerChoice& c : optimizer_choices()) keys += (keys.empty() ? "" : ", ") + c.key;
  return keys;
}

// The device-placed choice with the same state (the run a tiered one must equal bitwise),
// or nullptr for a device choice.
inline const OptimizerChoice* device_twin(const OptimizerChoice& c) {
  if (c.torch_reference || c.placement == Placement::kDevice) return nullptr;
  for (const OptimizerChoice& d : optimizer_choices()) {
    if (!d.torch_reference && d.placement == Placement::kDevice && d.bits == c.bits) return &d;
  }
  return nullptr;
}

}  // namespace octopage::cli
