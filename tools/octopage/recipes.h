// How the command line's LLaMA-style model trains with each rule: the peak learning rate
// of train's warmup-and-cosine schedule, the weight decay, and hyperparameters set over
// the rule's defaults, each chosen by training the model with it (recipes.cc says what
// was tried). Framework-free: train.cc and memory.cc read it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "octopage/options.h"

namespace octopage::cli {

struct Recipe {
  std::string rule;
  double lr;
  double weight_decay;
  std::vector<Hyperparameter> hyperparameters;  // besides lr and weight_decay
};

// Every recipe, one per rule.
const std::vector<Recipe>& recipes();
// The rule's recipe; a rule without one trains at its registry defaults.
Recipe recipe(std::string_view rule);

// The rule's options for training: its defaults, the recipe's hyperparameters, and `lr`
// and `weight_decay` (< 0: the recipe's).
GroupOptions training_options(std::string_view rule, double lr = -1, double weight_decay = -1);

}  // namespace octopage::cli
