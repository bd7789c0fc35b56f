#include "src/kernels/reference/adam_reference.h"

#include <algorithm>
#include <cstdint>

#include "src/kernels/adam_table.h"
#include "src/quant/float_convert.h"
#include "src/quant/formats.h"
#include "src/quant/q8_reference.h"
#include "src/rules/scalar_ops.h"

namespace octopage::kernels {
namespace {

template <DType kDType>
float load(const void* base, std::int64_t i) {
  if constexpr (kDType == DType::kFloat32) {
    return static_cast<const float*>(base)[i];
  } else if constexpr (kDType == DType::kBFloat16) {
    return quant::float_from_bf16(static_cast<const std::uint16_t*>(base)[i]);
  } else {
    return quant::float_from_fp16(static_cast<const std::uint16_t*>(base)[i]);
  }
}

template <DType kDType>
void store(void* base, std::int64_t i, float value) {
  if constexpr (kDType == DType::kFloat32) {
    static_cast<float*>(base)[i] = value;
  } else if constexpr (kDType == DType::kBFloat16) {
    static_cast<std::uint16_t*>(base)[i] = quant::bf16_from_float(value);
  } else {
    static_cast<std::uint16_t*>(base)[i] = quant::fp16_from_float(value);
  }
}

const quant::DynamicCode& code_of(bool is_signed) {
  return is_signed ? quant::signed_code() : quant::unsigned_code();
}

struct ReferenceAdam {
  template <bool kDecoupled, bool kAmsgrad>
  using AdamRule = rules::Adam<kDecoupled, kAmsgrad>;

  template <class Rule, DType kDType>
  static void fp32(const Chunk& c, const rules::AdamScalars& scalars) {
    const rules::ScalarOps ops;
    for (std::int64_t i = 0; i < c.n; ++i) {
      float p = load<kDType>(c.param, i);
      float state[Rule::kNumStates];
      for (int k = 0; k < Rule::kNumStates; ++k) state[k] = static_cast<const float*>(c.state[k])[i];
      Rule::update(ops, scalars, load<kDType>(c.grad, i), p, state);
      store<kDType>(c.param, i, p);
      for (int k = 0; k < Rule::kNumStates; ++k) static_cast<float*>(c.state[k])[i] = state[k];
    }
  }

  template <class Rule, DType kDType>
  static void q8(const Chunk& c, const rules::AdamScalars& scalars) {
    const rules::ScalarOps ops;
    for (std::int64_t begin = 0; begin < c.n; begin += quant::kQ8BlockSize) {
      const std::int64_t block = begin / quant::kQ8BlockSize;
      const std::int64_t len = std::min(quant::kQ8BlockSize, c.n - begin);
      float updated[Rule::kNumStates][quant::kQ8BlockSize];
      for (std::int64_t j = 0; j < len; ++j) {
        const std::int64_t i = begin + j;
        float p = load<kDType>(c.param, i);
        float state[Rule::kNumStates];
        for (int k = 0; k < Rule::kNumStates; ++k) {
          const auto* codes = static_cast<const std::uint8_t*>(c.state[k]);
          state[k] = quant::decode_reference(code_of(Rule::kStateSigned[k]), codes[i],
                                             c.absmax[k][block]);
        }
        Rule::update(ops, scalars, load<kDType>(c.grad, i), p, state);
        store<kDType>(c.param, i, p);
        for (int k = 0; k < Rule::kNumStates; ++k) updated[k][j] = state[k];
      }
      for (int k = 0; k < Rule::kNumStates; ++k) {
        quant::quantize_block_reference(code_of(Rule::kStateSigned[k]), updated[k], len,
                                        static_cast<std::uint8_t*>(c.state[k]) + begin,
                                        &c.absmax[k][block]);
      }
    }
  }
};

}  // namespace

const AdamKernelTable& adam_reference_kernels() {
  static const AdamKernelTable table = make_adam_kernel_table<ReferenceAdam>();
  return table;
}

}  // namespace octopage::kernels
