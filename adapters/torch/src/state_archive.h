// One parameter's optimizer state in a torch::optim archive and back: the keys and
// tensor layouts of Note [Archive state keys], for any registered rule. Not the archive
// around it (param groups, options): that is the Optimizer's save and load.
#pragma once

#include <cstddef>
#include <vector>

#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "octopage/optimizer.h"
#include "octopage/rules.h"

namespace octopage::torch {

// The states of every variant of `rule`, each once, in registry order: what a checkpoint
// of the rule may hold.
std::vector<StateInfo> rule_states(const RuleInfo& rule);

// Writes `state` (the state of `param`) into `archive`.
void write_state(::torch::serialize::OutputArchive& archive, StateSnapshot state, const ::torch::Tensor& param,
                 const std::vector<StateInfo>& states);

// Every state of the rule that `archive` has, with its step. c10::ValueError when the
// archive's tensors are not of the types and shapes the keys say; the core checks that
// the parameter's variant finds its states there (Note [Loading state]).
StateSnapshot read_state(::torch::serialize::InputArchive& archive, const std::vector<StateInfo>& states,
                         std::size_t group, std::size_t index);

}  // namespace octopage::torch
