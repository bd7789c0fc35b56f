// Adam and AdamW: the update of one element, written once (src/rules/adam_rule.inc)
// for every kernel: CPU SIMD lanes through Highway, scalar reference code, CUDA threads.
// A rule never sees memory, state formats, threads or devices: a kernel loads and
// decodes, calls update(), then encodes and stores.
//
// Per element, in fp32 and in this order (t: the parameter's step, counted from 1):
//   Adam (L2 decay):    g <- g + weight_decay * p
//   m <- beta1 * m + (1 - beta1) * g
//   v <- beta2 * v + (1 - beta2) * (g * g)
//   amsgrad:            v_max <- max(v_max, v); the denominator below uses v_max
//   AdamW (decoupled):  p <- p * (1 - lr * weight_decay)
//   p <- p - step_size * (m / (sqrt(v) + eps_hat))
// where step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t) and eps_hat =
// eps * sqrt(1 - beta2^t) are computed in fp64 once per parameter and step, then rounded
// to fp32. That is torch.optim's
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// (eps outside the square root) with both sides of the fraction multiplied by
// sqrt(1 - beta2^t): one division per element instead of two. Only +, -, *, /, sqrt and
// max are used, never a fused multiply-add, so every backend and SIMD target gives
// bitwise the same result. See Note [Non-finite gradients].
//
// Note [Non-finite gradients]
// When the square of an element's gradient (after L2 decay) is not finite in fp32 --
// the gradient is NaN or +-inf, or beyond about 1.8e19 so that g*g overflows -- the
// second moment would become inf or NaN, and the element is skipped for this step: its parameter and every state value keep their previous values (8-bit
// state is re-encoded with its block's new absmax, like any other value of the block).
// Other elements are unaffected, so one bad gradient value cannot poison the 255 others
// that share an 8-bit block's absmax. The policy is the same for every state format,
// parameter dtype and backend. torch.optim instead writes NaN/inf into the parameter
// and its state.
#pragma once

#include <cmath>
#include <cstdint>

#include "src/common/macros.h"

namespace octopage::rules {

// What an Adam kernel needs for one parameter and step, in fp32.
struct AdamScalars {
  float beta1 = 0.0f;
  float one_minus_beta1 = 0.0f;
  float beta2 = 0.0f;
  float one_minus_beta2 = 0.0f;
  float step_size = 0.0f;     // lr * sqrt(1 - beta2^t) / (1 - beta1^t)
  float eps_hat = 0.0f;       // eps * sqrt(1 - beta2^t)
  float weight_decay = 0.0f;  // the L2 coefficient (Adam); 0 for AdamW
  float decay = 1.0f;         // 1 - lr * weight_decay (AdamW); 1 for Adam
};

struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
};

// Scalars for step t >= 1 of a parameter, from the group's current hyperparameters.
inline AdamScalars make_adam_scalars(const AdamHyper& h, bool decoupled, std::int64_t t) {
  const double bias_correction1 = 1.0 - std::pow(h.beta1, static_cast<double>(t));
  const double sqrt_bias_correction2 = std::sqrt(1.0 - std::pow(h.beta2, static_cast<double>(t)));
  AdamScalars s;
  s.beta1 = static_cast<float>(h.beta1);
  s.one_minus_beta1 = static_cast<float>(1.0 - h.beta1);
  s.beta2 = static_cast<float>(h.beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
  s.step_size = static_cast<float>(h.lr * sqrt_bias_correction2 / bias_correction1);
  s.eps_hat = static_cast<float>(h.eps * sqrt_bias_correction2);
  s.weight_decay = decoupled ? 0.0f : static_cast<float>(h.weight_decay);
  s.decay = decoupled ? static_cast<float>(1.0 - h.lr * h.weight_decay) : 1.0f;
  return s;
}

#include "src/rules/adam_rule.inc"

}  // namespace octopage::rules
