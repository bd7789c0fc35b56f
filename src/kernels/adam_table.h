// Fills an AdamKernelTable from a backend's kernel templates, so every backend lays out
// its table the same way. Impl provides
//   template <bool kDecoupled, bool kAmsgrad> using AdamRule = ...;  // its copy of the rule
//   template <class Rule, DType kDType> static void fp32(const Chunk&, const AdamScalars&);
//   template <class Rule, DType kDType> static void q8(const Chunk&, const AdamScalars&);
#pragma once

#include "src/kernels/chunk.h"
#include "src/rules/adam.h"

namespace octopage::kernels {

template <class Impl, bool kDecoupled, bool kAmsgrad>
void add_adam_variant(AdamKernelTable& table) {
  using Rule = typename Impl::template AdamRule<kDecoupled, kAmsgrad>;
  const AdamVariant variant = adam_variant(kDecoupled, kAmsgrad);
  table.at(variant, StateFormat::kFp32, DType::kFloat32) = &Impl::template fp32<Rule, DType::kFloat32>;
  table.at(variant, StateFormat::kFp32, DType::kBFloat16) = &Impl::template fp32<Rule, DType::kBFloat16>;
  table.at(variant, StateFormat::kFp32, DType::kFloat16) = &Impl::template fp32<Rule, DType::kFloat16>;
  if constexpr (Rule::kQuantizable) {
    table.at(variant, StateFormat::kQ8, DType::kFloat32) = &Impl::template q8<Rule, DType::kFloat32>;
    table.at(variant, StateFormat::kQ8, DType::kBFloat16) = &Impl::template q8<Rule, DType::kBFloat16>;
    table.at(variant, StateFormat::kQ8, DType::kFloat16) = &Impl::template q8<Rule, DType::kFloat16>;
  }
}

template <class Impl>
AdamKernelTable make_adam_kernel_table() {
  AdamKernelTable table;
  add_adam_variant<Impl, false, false>(table);
  add_adam_variant<Impl, false, true>(table);
  add_adam_variant<Impl, true, false>(table);
  add_adam_variant<Impl, true, true>(table);
  return table;
}

}  // namespace octopage::kernels
