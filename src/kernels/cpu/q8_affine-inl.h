// 8-bit encode by Note [Q8 affine encoder], 64 values at a time with AVX-512 (F, BW, DQ:
// Highway's AVX3 and AVX3_DL targets): a float permute per table entry and a multiply-add
// per value instead of a table search. The caller encodes a vector it returns false for
// (a flagged value) with its exact encoder: byte lookups with VBMI, gathers without.

#if defined(OCTOPAGE_KERNELS_CPU_Q8_AFFINE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef OCTOPAGE_KERNELS_CPU_Q8_AFFINE_INL_H_
#undef OCTOPAGE_KERNELS_CPU_Q8_AFFINE_INL_H_
#else
#define OCTOPAGE_KERNELS_CPU_Q8_AFFINE_INL_H_
#endif

#include <array>
#include <cstdint>

#include "hwy/highway.h"
#include "src/quant/q8_affine_table.h"

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace octopage::kernels::cpu::HWY_NAMESPACE {
namespace affine {

// The first n of 64 lanes.
inline __mmask64 first_n64(std::size_t n) {
  return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
}

HWY_INLINE __mmask64 join_masks(__mmask16 m0, __mmask16 m1, __mmask16 m2, __mmask16 m3) {
  return _mm512_kunpackd(_mm512_kunpackw(m3, m2), _mm512_kunpackw(m1, m0));
}

// Step 4 of Note [Q8 byte-lookup encoder]: the codes of lanes whose x is negative.
HWY_INLINE __m512i mirror_negative(__m512i code, __mmask64 negative) {
  const __m512i mirrored = _mm512_min_epu8(_mm512_subs_epu8(_mm512_set1_epi8(static_cast<char>(254)), code),
                                           _mm512_set1_epi8(126));
  return _mm512_mask_blend_epi8(negative, code, mirrored);
}

// table[slot] for a table of 32 floats.
HWY_INLINE __m512 lookup32(const std::array<float, 32>& table, __m512i slot) {
  return _mm512_permutex2var_ps(_mm512_loadu_ps(table.data()), slot, _mm512_loadu_ps(table.data() + 16));
}

// The positive-side codes of 16 magnitudes by Note [Q8 affine encoder]; lanes it cannot
// vouch for are added to *flagged.
HWY_INLINE __m512i affine_codes16(const quant::Q8AffineTable& t, __m512 magnitude, __mmask16* flagged) {
  const __m512i bits = _mm512_castps_si512(magnitude);
  const __m512i slot = _mm512_max_epi32(
      _mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(static_cast<int>(t.first_exponent) - 1)),
      _mm512_setzero_si512());
  const __mmask16 above = _mm512_cmp_ps_mask(magnitude, lookup32(t.cross, slot), _CMP_GE_OQ);
  const __m512 below_r = _mm512_min_ps(
      _mm512_fmadd_ps(magnitude, lookup32(t.slope_below, slot), lookup32(t.offset_below, slot)),
      lookup32(t.ceiling, slot));
  const __m512 above_r = _mm512_fmadd_ps(magnitude, lookup32(t.slope_above, slot), lookup32(t.offset_above, slot));
  const __m512 chosen = _mm512_mask_blend_ps(above, below_r, above_r);
  // |r - nearest integer| < epsilon, or unordered (NaN); and every magnitude >= 2.0.
  const __m512 distance = _mm512_abs_ps(_mm512_reduce_ps(chosen, _MM_FROUND_TO_NEAREST_INT));
  *flagged |= _mm512_cmp_ps_mask(distance, _mm512_set1_ps(quant::Q8AffineTable::kEpsilon), _CMP_NGE_UQ) |
              _mm512_cmpge_epu32_mask(bits, _mm512_set1_epi32(0x40000000));
  return _mm512_cvttps_epi32(chosen);
}

// Dword lanes of four 16-lane vectors to bytes in element order.
alignas(64) inline constexpr std::int32_t kPackedOrder[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// The codes of values[0, 64) * scale in element order into *codes, by Note [Q8 affine
// encoder]; false (and *codes unset) when any of the 64 is flagged.
template <bool kSigned>
HWY_INLINE bool try_encode64(const quant::Q8AffineTable& affine, const float* values, __m512 scale,
                             __m512i* codes) {
  __m512 x[4];
  __m512i code32[4];
  __mmask16 flagged = 0;
  for (int k = 0; k < 4; ++k) {
    x[k] = _mm512_mul_ps(_mm512_loadu_ps(values + 16 * k), scale);
    code32[k] = affine_codes16(affine, _mm512_abs_ps(x[k]), &flagged);
  }
  if (HWY_UNLIKELY(flagged != 0)) return false;
  // In-lane packs interleave the four vectors' 128-bit lanes; one dword permute restores order.
  const __m512i packed = _mm512_packus_epi16(_mm512_packus_epi32(code32[0], code32[1]),
                                             _mm512_packus_epi32(code32[2], code32[3]));
  __m512i code = _mm512_permutexvar_epi32(_mm512_load_si512(kPackedOrder), packed);
  if constexpr (kSigned) {  // step 4 of Note [Q8 byte-lookup encoder]
    const __mmask64 negative = join_masks(
        _mm512_movepi32_mask(_mm512_castps_si512(x[0])), _mm512_movepi32_mask(_mm512_castps_si512(x[1])),
        _mm512_movepi32_mask(_mm512_castps_si512(x[2])), _mm512_movepi32_mask(_mm512_castps_si512(x[3])));
    code = mirror_negative(code, negative);
  }
  *codes = code;
  return true;
}

}  // namespace affine
}  // namespace octopage::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#endif  // OCTOPAGE_KERNELS_CPU_Q8_AFFINE_INL_H_
