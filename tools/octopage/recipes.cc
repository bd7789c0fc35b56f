// Each rule's recipe for the command line's model (recipes.h). The model, its warmup and
// cosine schedule and gradient clipping (1.0) are AdamW's; a recipe moves a rule to where
// it trains that model best among the learning rates tried: `octopage train --model small`
// (200 steps, batch 16 x 128 tokens, seed 1), evaluation loss at each lr tried, best
// first (AdamW at 2e-3: 0.405). The tiny model agreed within a factor of 2 or 3.
#include "tools/octopage/recipes.h"

#include "octopage/rules.h"

namespace octopage::cli {

const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> table = {
      // The LLaMA recipe: betas (0.9, 0.95), decoupled decay 0.1. Adam's decay is L2: none.
      {"adam", 2e-3, 0.0, {{"betas", {0.9, 0.95}}}},  // 0.406
      {"adamw", 2e-3, 0.1, {{"betas", {0.9, 0.95}}}},  // 0.405
      // Heavy-ball momentum: 0.1 (1.18), 0.05 (1.38), 0.2 (1.42). Plain SGD trains this
      // transformer slowly at any step size; the others reach 0.4-0.5.
      {"sgd", 0.1, 0.0, {{"momentum", {0.9}}}},
      // Lion's sign step moves every weight by lr: 1e-3 (0.425), 3e-4 (0.464), 2e-3
      // (0.678); decoupled decay 0.3, so lr * decay is near AdamW's.
      {"lion", 1e-3, 0.3, {}},
      {"rmsprop", 5e-4, 0.0, {}},  // 5e-4 (0.431), 1e-3 (0.538)
      {"adagrad", 1e-2, 0.0, {}},  // 1e-2 (0.528); tiny: 1e-2 over 5e-3, 2e-2 and 3e-2
      // AdamW's recipe with the slow EMA's default beta3 (0.9999): 0.407.
      {"ademamix", 2e-3, 0.1, {{"betas", {0.9, 0.95, 0.9999}}}},
      // max_unorm 1.0 caps each step near the weight's norm times AdamW's: 2e-2 (0.406),
      // 5e-2 (0.421); at AdamW's 2e-3 the cap holds most weights still.
      {"lamb", 2e-2, 0.1, {{"betas", {0.9, 0.95}}}},
      // max_unorm 0.02 caps each step at 2% of the weight's norm: 1.0 (0.456), 0.5
      // (0.531), 2.0 (0.649).
      {"lars", 1.0, 0.0, {}},
  };
  return table;
}

Recipe recipe(std::string_view rule) {
  for (const Recipe& r : recipes()) {
    if (r.rule == rule) return r;
  }
  const GroupOptions defaults = default_options(rule);
  return {std::string(rule), defaults.get("lr"), defaults.has("weight_decay") ? defaults.get("weight_decay") : 0.0, {}};
}

GroupOptions training_options(std::string_view rule, double lr, double weight_decay) {
  const Recipe r = recipe(rule);
  GroupOptions options = default_options(rule);
  for (const Hyperparameter& h : r.hyperparameters) options.set(h.name, h.values);
  options.set("lr", lr >= 0 ? lr : r.lr);
  if (options.has("weight_decay")) options.set("weight_decay", weight_decay >= 0 ? weight_decay : r.weight_decay);
  return options;
}

}  // namespace octopage::cli
