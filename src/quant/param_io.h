// Loads and stores of one parameter or gradient element in its dtype, as fp32, for
// scalar host code and CUDA threads alike (src/quant/float_convert.h defines the bits).
#pragma once

#include <cstdint>

#include "octopage/tensor.h"
#include "src/common/macros.h"
#include "src/quant/float_convert.h"

namespace octopage::quant {

template <DType kDType>
OCTOPAGE_HOST_DEVICE inline float load_element(const void* base, std::int64_t i) {
  if constexpr (kDType == DType::kFloat32) {
    return static_cast<const float*>(base)[i];
  } else if constexpr (kDType == DType::kBFloat16) {
    return float_from_bf16(static_cast<const std::uint16_t*>(base)[i]);
  } else {
    return float_from_fp16(static_cast<const std::uint16_t*>(base)[i]);
  }
}

template <DType kDType>
OCTOPAGE_HOST_DEVICE inline void store_element(void* base, std::int64_t i, float value) {
  if constexpr (kDType == DType::kFloat32) {
    static_cast<float*>(base)[i] = value;
  } else if constexpr (kDType == DType::kBFloat16) {
    static_cast<std::uint16_t*>(base)[i] = bf16_from_float(value);
  } else {
    static_cast<std::uint16_t*>(base)[i] = fp16_from_float(value);
  }
}

}  // namespace octopage::quant
