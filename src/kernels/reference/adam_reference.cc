#include "src/kernels/reference/adam_reference.h"

#include <algorithm>
#include <cstdint>

#include "src/kernels/adam_table.h"
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

struct ReferenceAdam {
  template <bool kDecoupled, bool kAmsgrad>
  using AdamRule = rules::Adam<kDecoupled, kAmsgrad>;

  template <class Rule, DType kDType>
  static void fp32(const Chunk& c, const rules::AdamScalars& scalars) {
    for (std::int64_t i = 0; i < c.n; ++i) update_fp32_element<Rule, kDType>(scalars, c, i);
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
        float p = quant::load_element<kDType>(c.param, i);
        float state[Rule::kNumStates];
        for (int k = 0; k < Rule::kNumStates; ++k) {
          const auto* codes = static_cast<const std::uint8_t*>(c.state[k]);
          state[k] = quant::decode_reference(code_of(Rule::state_signed(k)), codes[i],
                                             c.absmax[k][block]);
        }
        Rule::update(ops, scalars, quant::load_element<kDType>(c.grad, i), p, state);
        quant::store_element<kDType>(c.param, i, p);
        for (int k = 0; k < Rule::kNumStates; ++k) updated[k][j] = state[k];
      }
      for (int k = 0; k < Rule::kNumStates; ++k) {
        quant::quantize_block_reference(code_of(Rule::state_signed(k)), updated[k], len,
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
