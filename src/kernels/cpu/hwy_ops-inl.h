// Per-target SIMD building blocks for the CPU kernels: the lane operations a rule needs
// (HwyOps, the SIMD twin of rules::ScalarOps) and loads/stores of parameters in their
// dtype as fp32 lanes, rounding exactly as src/quant/float_convert.h does on every target.
// Included once per Highway target by the kernel translation units.

#if defined(OCTOPAGE_KERNELS_CPU_HWY_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef OCTOPAGE_KERNELS_CPU_HWY_OPS_INL_H_
#undef OCTOPAGE_KERNELS_CPU_HWY_OPS_INL_H_
#else
#define OCTOPAGE_KERNELS_CPU_HWY_OPS_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "hwy/highway.h"
#include "octopage/tensor.h"

HWY_BEFORE_NAMESPACE();
namespace octopage::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D>
struct HwyOps {
  using V = hn::Vec<D>;
  D d;
  HWY_INLINE V set(float x) const { return hn::Set(d, x); }
  HWY_INLINE V sqrt(V x) const { return hn::Sqrt(x); }
  HWY_INLINE V max(V a, V b) const { return hn::Max(a, b); }
  // 1, -1 or 0 (for +-0 and NaN, which the rules then skip).
  HWY_INLINE V sign(V x) const {
    const V zero = hn::Zero(d);
    return hn::IfThenElse(x > zero, hn::Set(d, 1.0f), hn::IfThenElseZero(x < zero, hn::Set(d, -1.0f)));
  }
  HWY_INLINE hn::Mask<D> is_finite(V x) const { return hn::IsFinite(x); }
  HWY_INLINE V select(hn::Mask<D> condition, V yes, V no) const {
    return hn::IfThenElse(condition, yes, no);
  }
};

// Highway's own fp16 conversions use F16C from AVX2 on; below that they truncate and
// mishandle infinities, so those targets use these exact integer versions instead.
template <class D>
HWY_INLINE hn::Vec<D> f32_from_f16_bits(D d, hn::Vec<hn::Rebind<std::uint32_t, D>> h) {
  const hn::Rebind<std::uint32_t, D> du;
  const hn::Rebind<std::int32_t, D> di;
  const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)));
  const auto exponent = hn::And(hn::ShiftRight<10>(h), hn::Set(du, 0x1Fu));
  const auto mantissa13 = hn::ShiftLeft<13>(hn::And(h, hn::Set(du, 0x3FFu)));
  const auto normal = hn::Or(hn::ShiftLeft<23>(hn::Add(exponent, hn::Set(du, 112u))), mantissa13);
  const auto inf_nan = hn::Or(hn::Set(du, 0x7F800000u), mantissa13);
  const auto subnormal = hn::BitCast(
      du, hn::Mul(hn::ConvertTo(d, hn::BitCast(di, hn::And(h, hn::Set(du, 0x3FFu)))),
                  hn::Set(d, 1.0f / 16777216.0f)));
  const auto exponent_i = hn::BitCast(di, exponent);
  auto bits = hn::IfThenElse(hn::RebindMask(du, exponent_i == hn::Set(di, 0x1F)), inf_nan, normal);
  bits = hn::IfThenElse(hn::RebindMask(du, exponent_i == hn::Zero(di)), subnormal, bits);
  return hn::BitCast(d, hn::Or(bits, sign));
}

template <class D>
HWY_INLINE hn::Vec<hn::Rebind<std::int32_t, D>> f16_bits_from_f32(D d, hn::Vec<D> v) {
  const hn::Rebind<std::int32_t, D> di;
  const auto bits = hn::BitCast(di, v);
  const auto sign = hn::And(hn::ShiftRight<16>(bits), hn::Set(di, 0x8000));
  const auto magnitude = hn::And(bits, hn::Set(di, 0x7FFFFFFF));
  const auto nan = hn::Or(hn::Set(di, 0x7E00), hn::And(hn::ShiftRight<13>(magnitude), hn::Set(di, 0x3FF)));
  const auto subnormal = hn::Sub(hn::BitCast(di, hn::Add(hn::BitCast(d, magnitude), hn::Set(d, 0.5f))),
                                 hn::Set(di, 0x3F000000));
  const auto odd = hn::And(hn::ShiftRight<13>(magnitude), hn::Set(di, 1));
  // magnitude - (112 << 23) + 0xFFF + odd, then drop 13 bits (see fp16_from_float).
  const auto normal = hn::ShiftRight<13>(
      hn::Add(hn::Add(magnitude, hn::Set(di, static_cast<std::int32_t>(0xC8000FFFu))), odd));
  auto result = hn::IfThenElse(magnitude < hn::Set(di, 0x38800000), subnormal, normal);
  result = hn::IfThenElse(magnitude > hn::Set(di, 0x477FEFFF), hn::Set(di, 0x7C00), result);
  result = hn::IfThenElse(magnitude > hn::Set(di, 0x7F800000), nan, result);
  return hn::Or(result, sign);
}

// Loads Lanes(d) parameter values of dtype kDType starting at element i, as fp32.
template <DType kDType, class D>
HWY_INLINE hn::Vec<D> load_f32(D d, const void* base, std::size_t i) {
  if constexpr (kDType == DType::kFloat32) {
    return hn::LoadU(d, static_cast<const float*>(base) + i);
  } else {
    const hn::Rebind<std::uint16_t, D> du16;
    const hn::Rebind<std::uint32_t, D> du32;
    const auto bits16 = hn::LoadU(du16, static_cast<const std::uint16_t*>(base) + i);
    if constexpr (kDType == DType::kBFloat16) {
      return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, bits16)));
    } else {
#if HWY_TARGET >= HWY_SSE4
      return f32_from_f16_bits(d, hn::PromoteTo(du32, bits16));
#else
      const hn::Rebind<hwy::float16_t, D> df16;
      return hn::PromoteTo(d, hn::BitCast(df16, bits16));
#endif
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// Note [Native bf16 stores]
// AVX512-BF16's vcvtneps2bf16 rounds 16 floats to bf16, nearest even, in one instruction,
// where the portable rounding takes about nine. It differs from octopage's bf16
// (src/quant/float_convert.h) on two kinds of input only: it flushes denormals to zero
// and keeps a NaN's payload (octopage stores 0x7FC0). One vfpclassps finds both, and a
// vector holding either takes the portable path, so the bits never change. Highway 1.0
// cannot ask for AVX512-BF16 inside its AVX3_DL target (Ice Lake has VBMI without it),
// so the instruction is inline assembly, used only where the CPU reports it.
HWY_INLINE bool cpu_has_avx512_bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
}

// Stores 16 floats as bf16 at out when the fast instruction gives octopage's bits.
HWY_INLINE bool store_bf16_native(__m512 v, std::uint16_t* out) {
  constexpr int kNanOrDenormal = 0x01 | 0x20 | 0x80;  // quiet NaN, denormal, signaling NaN
  if (_mm512_fpclass_ps_mask(v, kNanOrDenormal) != 0 || !cpu_has_avx512_bf16()) return false;
  __m256i bf16;
  asm("vcvtneps2bf16 %1, %0" : "=v"(bf16) : "v"(v));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), bf16);
  return true;
}
#endif

// Stores fp32 lanes as kDType at element i, rounding to nearest even.
template <DType kDType, class D>
HWY_INLINE void store_f32(D d, hn::Vec<D> v, void* base, std::size_t i) {
  if constexpr (kDType == DType::kFloat32) {
    hn::StoreU(v, d, static_cast<float*>(base) + i);
  } else {
    const hn::Rebind<std::uint16_t, D> du16;
    const hn::Rebind<std::int32_t, D> di;
    auto* out = static_cast<std::uint16_t*>(base) + i;
    if constexpr (kDType == DType::kBFloat16) {
#if HWY_TARGET == HWY_AVX3_DL
      if constexpr (sizeof(hn::Vec<D>) == 64) {  // a full vector: see Note [Native bf16 stores]
        if (store_bf16_native(v.raw, out)) return;
      }
#endif
      const hn::Rebind<std::uint32_t, D> du;
      const auto bits = hn::BitCast(du, v);
      const auto odd = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
      const auto rounded = hn::ShiftRight<16>(hn::Add(hn::Add(bits, hn::Set(du, 0x7FFFu)), odd));
      const auto magnitude = hn::BitCast(di, hn::And(bits, hn::Set(du, 0x7FFFFFFFu)));
      const auto result = hn::IfThenElse(magnitude > hn::Set(di, 0x7F800000), hn::Set(di, 0x7FC0),
                                         hn::BitCast(di, rounded));
      hn::StoreU(hn::DemoteTo(du16, result), du16, out);
    } else {
#if HWY_TARGET >= HWY_SSE4
      hn::StoreU(hn::DemoteTo(du16, f16_bits_from_f32(d, v)), du16, out);
#else
      const hn::Rebind<hwy::float16_t, D> df16;
      hn::StoreU(hn::BitCast(du16, hn::DemoteTo(df16, v)), du16, out);
#endif
    }
  }
}

}  // namespace octopage::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // OCTOPAGE_KERNELS_CPU_HWY_OPS_INL_H_
