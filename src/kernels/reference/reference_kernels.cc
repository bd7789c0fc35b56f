#include "src/kernels/reference/reference_kernels.h"

#include <algorithm>
#include <cstdint>

#include "src/kernels/kernel_table.h"
#include "src/kernels/scalar_element.h"
#include "src/quant/formats.h"
#include "src/quant/param_io.h"
#include "src/quant/q8_reference.h"
#include "src/rules/scalar_ops.h"

namespace octopage::kernels {
namespace {

const quant::DynamicCode& code_of(bool is_signed) {
  return is_signed ? quant::signed_code() : quant::unsigned_code();
}

// State k's value at element i of a chunk: fp32, or the 8-bit code decoded.
template <StateFormat kFormat>
float state_value(const Chunk& c, int k, bool is_signed, std::int64_t i) {
  if constexpr (kFormat == StateFormat::kFp32) {
    return static_cast<const float*>(c.state[k])[i];
  } else {
    return quant::decode_reference(code_of(is_signed), static_cast<const std::uint8_t*>(c.state[k])[i],
                                   c.absmax[k][i / quant::kQ8BlockSize]);
  }
}

struct Reference {
  template <class Row, StateFormat kFormat, DType kDType>
  static void direction_norm(const Chunk& c, const rules::RuleScalars& packed, double* block_sums) {
    const auto scalars = rules::unpack_scalars<typename Row::Scalars>(packed);
    const rules::ScalarOps ops;
    for (std::int64_t begin = 0; begin < c.n; begin += kReduceBlock) {
      double lanes[kReduceLanes] = {};
      const std::int64_t len = std::min(kReduceBlock, c.n - begin);
      for (std::int64_t j = 0; j < len; ++j) {
        const std::int64_t i = begin + j;
        float state[kStateSlots<Row>];
        for (int k = 0; k < Row::kNumStates; ++k) state[k] = state_value<kFormat>(c, k, Row::state_signed(k), i);
        const double d = Row::direction(ops, scalars, quant::load_element<kDType>(c.grad, i) * packed.grad_scale, state);
        lanes[j % kReduceLanes] += d * d;
      }
      double block = 0.0;
      for (double lane : lanes) block += lane;
      block_sums[begin / kReduceBlock] = block;
    }
  }

  template <class Row, StateFormat kFormat, DType kDType>
  static void kernel(const Chunk& c, const rules::RuleScalars& packed) {
    const auto scalars = rules::unpack_scalars<typename Row::Scalars>(packed);
    if constexpr (kFormat == StateFormat::kFp32) {
      for (std::int64_t i = 0; i < c.n; ++i) update_fp32_element<Row, kDType>(scalars, packed.grad_scale, c, i);
    } else {
      q8<Row, kDType>(c, scalars, packed.grad_scale);
    }
  }

  template <class Row, DType kDType>
  static void q8(const Chunk& c, const typename Row::Scalars& scalars, float grad_scale) {
    constexpr int K = kStateSlots<Row>;
    const rules::ScalarOps ops;
    for (std::int64_t begin = 0; begin < c.n; begin += quant::kQ8BlockSize) {
      const std::int64_t block = begin / quant::kQ8BlockSize;
      const std::int64_t len = std::min(quant::kQ8BlockSize, c.n - begin);
      float updated[K][quant::kQ8BlockSize];
      for (std::int64_t j = 0; j < len; ++j) {
        const std::int64_t i = begin + j;
        float p = quant::load_element<kDType>(c.param, i);
        float state[K];
        for (int k = 0; k < Row::kNumStates; ++k) state[k] = state_value<StateFormat::kQ8>(c, k, Row::state_signed(k), i);
        Row::update(ops, scalars, quant::load_element<kDType>(c.grad, i) * grad_scale, p, state);
        quant::store_element<kDType>(c.param, i, p);
        for (int k = 0; k < Row::kNumStates; ++k) updated[k][j] = state[k];
      }
      for (int k = 0; k < Row::kNumStates; ++k) {
        quant::quantize_block_reference(code_of(Row::state_signed(k)), updated[k], len,
                                        static_cast<std::uint8_t*>(c.state[k]) + begin,
                                        &c.absmax[k][block]);
      }
    }
  }
};

template <DType kDType>
void sum_squares(const void* values, std::int64_t n, double* block_sums) {
  for (std::int64_t begin = 0; begin < n; begin += kReduceBlock) {
    double lanes[kReduceLanes] = {};
    const std::int64_t len = std::min(kReduceBlock, n - begin);
    for (std::int64_t j = 0; j < len; ++j) {
      const double v = quant::load_element<kDType>(values, begin + j);
      lanes[j % kReduceLanes] += v * v;
    }
    double block = 0.0;
    for (double lane : lanes) block += lane;
    block_sums[begin / kReduceBlock] = block;
  }
}

}  // namespace

SumSquaresKernel reference_sum_squares(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return &sum_squares<DType::kFloat32>;
    case DType::kBFloat16: return &sum_squares<DType::kBFloat16>;
    case DType::kFloat16: return &sum_squares<DType::kFloat16>;
  }
  return nullptr;
}

const DirectionNormTable& reference_direction_norms() {
  static const DirectionNormTable table = make_direction_norm_table<rules::RegisteredRules, Reference>();
  return table;
}

const KernelTable& reference_kernels() {
  static const KernelTable table = make_kernel_table<rules::RegisteredRules, Reference>();
  return table;
}

}  // namespace octopage::kernels
