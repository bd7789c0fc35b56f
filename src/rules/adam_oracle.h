// The fp64 oracle of Adam and AdamW: torch.optim's documented algorithm, one element,
// written to be read next to the docs rather than to be fast. Fast kernels are checked
// against it; it is checked against values worked out by hand (tests/test_adam_oracle.cc).
// It applies octopage's Note [Non-finite gradients] (see src/rules/adam.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

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
inline void adam_oracle_step(const AdamOracleConfig& c, std::int64_t t, double g,
                             AdamOracleElement& e) {
  if (!c.decoupled && c.weight_decay != 0.0) g = g + c.weight_decay * e.p;
  const float g32 = static_cast<float>(g);
  if (!std::isfinite(g32 * g32)) return;  // skipped: octopage's non-finite policy
  const double m = c.beta1 * e.m + (1.0 - c.beta1) * g;
  const double v = c.beta2 * e.v + (1.0 - c.beta2) * g * g;
  double p = e.p;
  if (c.decoupled) p = p * (1.0 - c.lr * c.weight_decay);
  const double bias_correction1 = 1.0 - std::pow(c.beta1, static_cast<double>(t));
  const double bias_correction2 = 1.0 - std::pow(c.beta2, static_cast<double>(t));
  const double v_max = std::max(e.v_max, v);
  const double denominator =
      std::sqrt(c.amsgrad ? v_max : v) / std::sqrt(bias_correction2) + c.eps;
  e.p = p - (c.lr / bias_correction1) * m / denominator;
  e.m = m;
  e.v = v;
  e.v_max = v_max;
}

}  // namespace octopage::rules
