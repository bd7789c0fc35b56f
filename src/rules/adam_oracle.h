// The fp64 oracle of Adam and AdamW with torch.optim's named options: a front to the
// rule's own oracle (AdamRule::oracle in src/rules/adam_rule.inc), which the tests check
// against values worked out by hand (tests/test_adam_oracle.cc) and the kernels against.
#pragma once

#include <algorithm>
#include <cstdint>

#include "src/rules/registry.h"

namespace octopage::rules {

struct AdamOracleConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled = false;  // false: torch.optim.Adam, true: torch.optim.AdamW
  bool amsgrad = false;
};

struct AdamOracleElement {
  double p = 0.0;
  double m = 0.0;      // exp_avg
  double v = 0.0;      // exp_avg_sq
  double v_max = 0.0;  // max_exp_avg_sq (amsgrad)
};

// Step t (t >= 1) of one element with gradient g.
inline void adam_oracle_step(const AdamOracleConfig& c, std::int64_t t, double g, AdamOracleElement& e) {
  const double values[] = {c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.amsgrad ? 1.0 : 0.0};
  double state[] = {e.m, e.v, e.v_max};
  const int row = c.amsgrad ? 1 : 0;
  if (c.decoupled) {
    AdamRule<true>::oracle(values, row, t, g, e.p, state);
  } else {
    AdamRule<false>::oracle(values, row, t, g, e.p, state);
  }
  e.m = state[0];
  e.v = state[1];
  e.v_max = state[2];
}

}  // namespace octopage::rules
