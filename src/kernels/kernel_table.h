// How every backend lays out its kernels: for_each_kernel visits every (row, state
// format, param dtype) that exists, in table order, so the scalar reference, each
// Highway target and CUDA fill their tables with one helper. `Rules` is the backend's
// copy of the registered rules (the Highway targets compile their own).
#pragma once

#include "src/kernels/chunk.h"
#include "src/kernels/reduce.h"
#include "src/rules/rule.h"

namespace octopage::kernels {

// Calls visit.template operator()<Row, kFormat, kDType>(row) for each combination.
template <class Rules, class Visit>
void for_each_kernel(Visit&& visit) {
  rules::for_each_row(Rules{}, [&]<class Rule, class Row>(int row) {
    const auto dtypes = [&]<StateFormat kFormat>() {
      visit.template operator()<Row, kFormat, DType::kFloat32>(row);
      visit.template operator()<Row, kFormat, DType::kBFloat16>(row);
      visit.template operator()<Row, kFormat, DType::kFloat16>(row);
    };
    dtypes.template operator()<StateFormat::kFp32>();
    if constexpr (Row::kQuantizable) dtypes.template operator()<StateFormat::kQ8>();
  });
}

// A table of Impl's kernels: Impl::template kernel<Row, kFormat, kDType> for each.
template <class Rules, class Impl>
KernelTable make_kernel_table() {
  KernelTable table;
  for_each_kernel<Rules>([&]<class Row, StateFormat kFormat, DType kDType>(int row) {
    table.at(row, kFormat, kDType) = &Impl::template kernel<Row, kFormat, kDType>;
  });
  return table;
}

// A table of Impl's direction-norm kernels: Impl::template direction_norm<Row, kFormat, kDType>.
template <class Rules, class Impl>
DirectionNormTable make_direction_norm_table() {
  DirectionNormTable table;
  for_each_kernel<Rules>([&]<class Row, StateFormat kFormat, DType kDType>(int row) {
    table.at(row, kFormat, kDType) = &Impl::template direction_norm<Row, kFormat, kDType>;
  });
  return table;
}

}  // namespace octopage::kernels
