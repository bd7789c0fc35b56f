// The optimizers the `octopage` command line knows, by the key a user types: every rule
// of the registry with 32-bit or 8-bit state in each placement, keyed as bitsandbytes
// names its classes, lower-cased, with a placement prefix (adamw, lion8bit,
// paged-ademamix8bit, offload-sgd8bit, ...), and LibTorch's own torch::optim::AdamW
// (torch-adamw) as the reference. Framework-free: train.cc makes them, memory.cc plans them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "octopage/options.h"

namespace octopage::cli {

struct OptimizerChoice {
  std::string key;       // what --optimizer takes: "paged-lion8bit"
  std::string name;      // what tables print: "PagedLion8bit"
  std::string rule;      // the registry's rule: "lion"
  int bits;              // state bits
  Placement placement;
  bool torch_reference;  // torch::optim::AdamW rather than octopage's

  // The octopage::torch class that trains it ("Lion8bit", "AdamW32bit"), placed by the
  // placement option.
  std::string class_name() const;
};

// Generated from the registry (octopage/rules.h): per rule, in registry order, <rule>,
// <rule>8bit, then the paged- and offload- ones; torch-adamw last.
const std::vector<OptimizerChoice>& optimizer_choices();

// nullptr when there is no such key.
const OptimizerChoice* find_optimizer(std::string_view key);

// "adam, adam8bit, ..., torch-adamw", for messages.
std::string optimizer_keys();

// The device-placed choice of the same rule and state bits (the run a tiered one must
// equal bitwise), or nullptr for a device choice.
const OptimizerChoice* device_twin(const OptimizerChoice& c);

}  // namespace octopage::cli
