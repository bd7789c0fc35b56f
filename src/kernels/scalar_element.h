// One element of a chunk with 32-bit state, one value at a time: load the parameter,
// gradient and state, apply the rule, store. The loop body of the scalar reference
// kernels and of a CUDA thread alike.
#pragma once

#include <cstdint>

#include "src/common/macros.h"
#include "src/kernels/chunk.h"
#include "src/quant/param_io.h"
#include "src/rules/scalar_ops.h"

namespace octopage::kernels {

// Room for a row's states (a zero-length array is not C++).
template <class Row>
inline constexpr int kStateSlots = Row::kNumStates > 0 ? Row::kNumStates : 1;

template <class Row, DType kDType>
OCTOPAGE_HOST_DEVICE inline void update_fp32_element(const typename Row::Scalars& scalars, float grad_scale,
                                                     const Chunk& c, std::int64_t i) {
  const rules::ScalarOps ops;
  float p = quant::load_element<kDType>(c.param, i);
  float state[kStateSlots<Row>];
  for (int k = 0; k < Row::kNumStates; ++k) state[k] = static_cast<const float*>(c.state[k])[i];
  Row::update(ops, scalars, quant::load_element<kDType>(c.grad, i) * grad_scale, p, state);
  quant::store_element<kDType>(c.param, i, p);
  for (int k = 0; k < Row::kNumStates; ++k) static_cast<float*>(c.state[k])[i] = state[k];
}

}  // namespace octopage::kernels
