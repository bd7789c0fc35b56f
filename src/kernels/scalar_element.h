// One element of a chunk with 32-bit state, one value at a time: load the parameter,
// gradient and state, apply the rule, store. The loop body of the scalar reference
// kernels and of a CUDA thread alike.
#pragma once

#include <cstdint>

#include "src/common/macros.h"
#include "src/kernels/chunk.h"
#include "src/quant/param_io.h"
#include "src/rules/adam.h"
#include "src/rules/scalar_ops.h"

namespace octopage::kernels {

template <class Rule, DType kDType>
OCTOPAGE_HOST_DEVICE inline void update_fp32_element(const rules::AdamScalars& scalars, const Chunk& c, std::int64_t i) {
  const rules::ScalarOps ops;
  float p = quant::load_element<kDType>(c.param, i);
  float state[Rule::kNumStates];
  for (int k = 0; k < Rule::kNumStates; ++k) state[k] = static_cast<const float*>(c.state[k])[i];
  Rule::update(ops, scalars, quant::load_element<kDType>(c.grad, i), p, state);
  quant::store_element<kDType>(c.param, i, p);
  for (int k = 0; k < Rule::kNumStates; ++k) static_cast<float*>(c.state[k])[i] = state[k];
}

}  // namespace octopage::kernels
